// Tensor: contiguous storage + shape + dtype + device. No strides, no broadcasting: ops state the
// shapes they accept and check them. Views share storage (reshape, a range of rows along dim 0).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

namespace br {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[3, 16, 64]"
int64_t shape_numel(const Shape& s);

// Owns one allocation; returns it to the allocator (and the accounting) when the last tensor goes.
class Storage {
 public:
  Storage(Device d, size_t bytes, MemCategory c);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  MemCategory category() const { return category_; }
  void set_category(MemCategory c);  // moves the bytes between accounting categories

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  MemCategory category_;
};

class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu,
                      MemCategory category = MemCategory::activations);
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu,
                      MemCategory category = MemCategory::activations);
  // A tensor on `device` holding a copy of host data (n must equal the shape's element count).
  template <typename T>
  static Tensor from_host(const std::vector<T>& v, const Shape& shape, Device device = Device::cpu,
                          MemCategory category = MemCategory::activations) {
    BR_CHECK(int64_t(v.size()) == shape_numel(shape), "Tensor::from_host: {} values for shape {}",
             v.size(), shape_str(shape));
    Tensor t = empty(shape, dtype_of<T>::value, device, category);
    t.copy_from_host(v.data(), v.size() * sizeof(T));
    return t;
  }

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return int64_t(shape_.size()); }
  int64_t size(int64_t i) const;  // negative i counts from the end
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return size_t(numel_) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_cuda() const { return device_ == Device::cuda; }
  MemCategory category() const;
  std::string str() const;  // "f32[3, 16, 64]@cpu", for error messages

  void* raw() const { return static_cast<char*>(storage_->data()) + offset_; }
  template <typename T>
  T* data() const {
    BR_CHECK(dtype_ == dtype_of<T>::value, "Tensor::data: tensor is {}, accessed as {}", str(),
             dtype_name(dtype_of<T>::value));
    return static_cast<T*>(raw());
  }

  // Views sharing storage.
  Tensor view(const Shape& shape) const;              // same element count, any shape
  Tensor rows(int64_t begin, int64_t end) const;      // [begin, end) along dim 0
  Tensor flat() const { return view({numel_}); }
  // The same bytes seen as another dtype of equal size (bf16 bits as f16 storage, ...).
  Tensor reinterpret(DType dtype) const;

  // Copies.
  Tensor to(Device device, MemCategory category = MemCategory::activations) const;
  Tensor clone(MemCategory category = MemCategory::activations) const;
  void copy_from(const Tensor& src) const;  // same shape and dtype, any devices
  void copy_from_host(const void* src, size_t bytes) const;
  void copy_to_host(void* dst, size_t bytes) const;
  template <typename T>
  std::vector<T> to_vector() const {
    BR_CHECK(dtype_ == dtype_of<T>::value, "Tensor::to_vector: tensor is {}", str());
    std::vector<T> v; v.resize(static_cast<size_t>(numel_));
    copy_to_host(v.data(), nbytes());
    return v;
  }
  void zero_() const;  // all bytes 0 (a Tensor is a handle: writing data is const)
  void fill_bytes_(uint8_t byte) const;  // every byte set (0xff poisons floats with NaN)

  // Storage sharing, used by the tape to adopt a tensor instead of copying it.
  bool covers_storage() const;                       // view spans its whole allocation
  long storage_use_count() const { return storage_.use_count(); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::f32;
  Device device_ = Device::cpu;
};

// Shape and dtype contracts, with messages naming the op and the tensors.
void check_shape(const char* op, const char* name, const Tensor& t, const Shape& expected);
void check_dtype(const char* op, const char* name, const Tensor& t, DType expected);
void check_same_device(const char* op, const Tensor& a, const Tensor& b);
void check_defined(const char* op, const char* name, const Tensor& t);
// t is defined and has ref's shape, dtype and device.
void check_like(const char* op, const char* name, const Tensor& t, const Tensor& ref);

}  // namespace br
