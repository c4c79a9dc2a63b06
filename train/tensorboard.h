// TensorBoard event files, as Hugging Face's TensorBoardCallback writes them through
// torch.utils.tensorboard: `events.out.tfevents.<unix time>.<host>` in the logging dir, a stream
// of TFRecords (little-endian u64 length, masked CRC32C of the length, the bytes, masked CRC32C of
// the bytes), each an `Event` proto: the first holds file_version "brain.Event:2", the rest one
// scalar `Summary.Value` each (tag, simple_value) at a step and a wall time.
#pragma once
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace br {

// Seconds since the Unix epoch: an event's wall time.
double unix_time();

// TFRecord's checksum: CRC32C (Castagnoli), rotated right by 15 and offset by 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t n);

class EventWriter {
 public:
  // Creates `dir` if needed and opens a new event file in it; throws naming the path.
  EventWriter(const std::string& dir, const std::string& host);
  ~EventWriter();
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  void add_scalar(const std::string& tag, double value, int64_t step, double wall_time);
  // Every number in `logs` under HF's tag rewrite (tensorboard_tag), then flushed so a live
  // TensorBoard sees the run in progress.
  void add_logs(const nlohmann::ordered_json& logs, int64_t step,
                std::optional<double> wall_time = std::nullopt);  // default: now (unix_time)
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& bytes);
  std::string path_;
  std::FILE* file_ = nullptr;
};

// HF's rewrite_logs for one key; a key that already holds a '/' (ours: memory/peak_bytes) stays.
std::string tensorboard_tag(const std::string& key);

// What an event file holds, for tests and tools: every scalar, in file order. Throws naming the
// file and the record on a bad length, a CRC mismatch or a malformed proto.
struct ScalarEvent {
  std::string tag;
  float value = 0;
  int64_t step = 0;
  double wall_time = 0;
};
struct EventFile {
  std::string file_version;
  std::vector<ScalarEvent> scalars;
};
EventFile read_event_file(const std::string& path);

// The HF default logging dir: `runs/<%b%d_%H-%M-%S>_<host>` (e.g. runs/Dec02_13-05-00_box), under
// `output_dir`.
std::string default_logging_dir(const std::string& output_dir);
std::string host_name();

}  // namespace br
