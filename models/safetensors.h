// safetensors in and out: the weight format of Hugging Face checkpoints (model.safetensors).
// Layout: [u64 LE N][N bytes of JSON header, right-padded with spaces][data buffer]. The header maps
// each tensor name to {"dtype","shape","data_offsets":[begin,end]} (offsets relative to the data
// buffer, end exclusive) plus an optional "__metadata__" {str: str}. The reader accepts exactly what
// the reference implementation (huggingface/safetensors, tensor.rs) accepts: tensors cover the data
// buffer without holes or overlap, each holds numel * itemsize bytes, and the file ends at the buffer's end.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace br {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // as spelled in the file: "F32", "BF16", "I64", "BOOL", "F8_E4M3", ...
  Shape shape;        // [] is a scalar
  uint64_t begin = 0;  // byte range in the data buffer, end exclusive
  uint64_t end = 0;
  int64_t numel() const { return shape_numel(shape); }
  uint64_t nbytes() const { return end - begin; }
};

// The br::DType a safetensors dtype loads as: F32 F64 F16 BF16 I32 I64 U8; nullopt for the rest.
std::optional<DType> dtype_from_safetensors(std::string_view st_dtype);
// "F32", "BF16", ... for a br::DType.
std::string_view safetensors_dtype_name(DType t);

class SafetensorsFile {
 public:
  // Maps the file read-only and validates the whole header; errors name the file and the tensor.
  static SafetensorsFile open(const std::string& path);
  // Same validation over bytes in memory; `label` stands for the file name in error messages.
  static SafetensorsFile from_bytes(std::vector<uint8_t> bytes, const std::string& label = "<memory>");

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }  // in data order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  const SafetensorsEntry& entry(const std::string& name) const;
  // The tensor's raw little-endian bytes, valid while this object (or a copy) lives.
  std::span<const uint8_t> bytes(const std::string& name) const;

  // A new tensor with the stored shape and dtype; unsupported dtypes (BOOL, I8, F8_*, ...) throw.
  Tensor load(const std::string& name, Device device = Device::cpu,
              MemCategory category = MemCategory::parameters) const;
  // Checks the stored shape equals `expected` and converts to `dtype` (floating targets from any
  // supported dtype; integer targets from integers, range-checked).
  Tensor load_as(const std::string& name, const Shape& expected, DType dtype,
                 Device device = Device::cpu, MemCategory category = MemCategory::parameters) const;

 private:
  struct Buffer;
  static SafetensorsFile parse(std::shared_ptr<const Buffer> buf, const std::string& label);

  std::shared_ptr<const Buffer> buf_;
  std::string path_;
  uint64_t data_start_ = 0;  // 8 + N
  std::vector<SafetensorsEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes the tensors as the reference writer does: "__metadata__" first (omitted when empty), then
// tensors ordered by descending dtype (I64, F64, F32, I32, BF16, F16, U8), then by name; compact
// JSON padded with spaces to a multiple of 8. CUDA tensors are copied to the host. The file is
// written to `path.tmp`, flushed and renamed over `path`, so an interrupted write leaves any old
// file intact. transformers needs {"format": "pt"} in the metadata, hence the default.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace br
