// libFuzzer target for the flag parser (train/args.h). The first byte picks the command (mod 7,
// kCommands order) and the form (/ 7 mod 2): argv, one argument per line of the rest, or the rest
// as an args.json. An input is rejected with a br::Error (naming the flag or the file), or it
// gives arguments whose derived values (training_args.json, the Back Razor policy, the per-layer
// plans of a 12-layer model, the help text) are computed without anything but a br::Error.
#include "fuzz.h"
#include "train/args.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const br::Command command = br::kCommands[in.mode % 7];
  const bool json = (in.mode / 7) % 2 == 1 && command != br::Command::launch;
  const std::string path = "fuzz/args.json";
  br::CommandArgs a;
  try {
    if (json) {
      a = br::parse_command_args_json(command, in.text, path, std::nullopt);
    } else {
      std::vector<std::string> argv;
      size_t pos = 0;
      while (pos <= in.text.size() && !in.text.empty()) {
        size_t nl = in.text.find('\n', pos);
        if (nl == std::string::npos) nl = in.text.size();
        argv.push_back(in.text.substr(pos, nl - pos));
        pos = nl + 1;
      }
      a = br::parse_command_args(command, argv, std::nullopt);
    }
  } catch (const br::Error& e) {
    fuzz::require(*e.what() != 0, "an error says something");
    if (json && std::string_view(e.what()).find("invalid JSON") != std::string_view::npos)
      fuzz::require_names(e, path);
    return 0;
  }
  fuzz::require(a.command == command, "the command is kept");
  if (a.help) return 0;
  if (command == br::Command::train || command == br::Command::eval || command == br::Command::predict) {
    fuzz::require(a.do_train || a.do_eval || a.do_predict, "train, eval and predict have something to do");
    (void)a.to_json().dump();
  }
  try {
    (void)br::backrazor_policy(a);
    (void)br::backrazor_label(a);
    (void)br::layer_plans(a, 12);
  } catch (const br::Error&) {
  }
  return 0;
}
