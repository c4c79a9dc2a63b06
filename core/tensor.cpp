#include "core/tensor.h"

#include <cstring>

#if BERTRAZOR_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace br {

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    BR_CHECK(d >= 0, "shape {} has a negative dimension", shape_str(s));
    n *= d;
  }
  return n;
}

Storage::Storage(Device d, size_t bytes, MemCategory c) : bytes_(bytes), device_(d), category_(c) {
  data_ = allocate(d, bytes, c);
}

Storage::~Storage() { deallocate(device_, data_, bytes_, category_); }

void Storage::set_category(MemCategory c) {
  recategorize(device_, bytes_, category_, c);
  category_ = c;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device, MemCategory category) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = std::make_shared<Storage>(device, t.nbytes(), category);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device, MemCategory category) {
  Tensor t = empty(shape, dtype, device, category);
  t.zero_();
  return t;
}

int64_t Tensor::size(int64_t i) const {
  int64_t d = dim();
  if (i < 0) i += d;
  BR_CHECK(i >= 0 && i < d, "Tensor::size: dimension {} out of range for {}", i, str());
  return shape_[size_t(i)];
}

MemCategory Tensor::category() const {
  BR_CHECK(defined(), "Tensor::category: undefined tensor");
  return storage_->category();
}

std::string Tensor::str() const {
  if (!defined()) return "undefined";
  return fmt::format("{}{}@{}", dtype_name(dtype_), shape_str(shape_), device_name(device_));
}

Tensor Tensor::view(const Shape& shape) const {
  BR_CHECK(defined(), "Tensor::view: undefined tensor");
  BR_CHECK(shape_numel(shape) == numel_, "Tensor::view: cannot view {} as {}", str(),
           shape_str(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  BR_CHECK(defined() && dim() >= 1, "Tensor::rows: need at least one dimension, got {}", str());
  BR_CHECK(0 <= begin && begin <= end && end <= shape_[0], "Tensor::rows: [{}, {}) out of {}",
           begin, end, str());
  int64_t row = shape_[0] ? numel_ / shape_[0] : 0;
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.numel_ = row * (end - begin);
  t.offset_ += size_t(begin * row) * dtype_size(dtype_);
  return t;
}

Tensor Tensor::reinterpret(DType dtype) const {
  BR_CHECK(dtype_size(dtype) == dtype_size(dtype_), "Tensor::reinterpret: {} as {} changes size",
           str(), dtype_name(dtype));
  Tensor t = *this;
  t.dtype_ = dtype;
  return t;
}

bool Tensor::covers_storage() const {
  return defined() && offset_ == 0 && nbytes() == storage_->bytes();
}

Tensor Tensor::to(Device device, MemCategory category) const {
  Tensor t = empty(shape_, dtype_, device, category);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::clone(MemCategory category) const { return to(device_, category); }

void Tensor::copy_from(const Tensor& src) const {
  BR_CHECK(defined() && src.defined(), "Tensor::copy_from: undefined tensor");
  BR_CHECK(src.shape_ == shape_ && src.dtype_ == dtype_, "Tensor::copy_from: {} into {}",
           src.str(), str());
  if (nbytes() == 0) return;
  if (device_ == Device::cpu && src.device_ == Device::cpu) {
    std::memcpy(raw(), src.raw(), nbytes());
    return;
  }
#if BERTRAZOR_WITH_CUDA
  cudaMemcpyKind kind = device_ == Device::cpu ? cudaMemcpyDeviceToHost
                        : src.device_ == Device::cpu ? cudaMemcpyHostToDevice
                                                      : cudaMemcpyDeviceToDevice;
  BR_CUDA_CHECK(cudaMemcpyAsync(raw(), src.raw(), nbytes(), kind, cuda::stream()));
  if (device_ == Device::cpu) BR_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
#else
  fail("Tensor::copy_from: {} -> {} needs CUDA, and this build has none", src.str(), str());
#endif
}

void Tensor::copy_from_host(const void* src, size_t bytes) const {
  BR_CHECK(bytes == nbytes(), "Tensor::copy_from_host: {} bytes into {}", bytes, str());
  if (bytes == 0) return;
  if (device_ == Device::cpu) {
    std::memcpy(raw(), src, bytes);
    return;
  }
#if BERTRAZOR_WITH_CUDA
  BR_CUDA_CHECK(cudaMemcpyAsync(raw(), src, bytes, cudaMemcpyHostToDevice, cuda::stream()));
  BR_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
#endif
}

void Tensor::copy_to_host(void* dst, size_t bytes) const {
  BR_CHECK(bytes == nbytes(), "Tensor::copy_to_host: {} bytes from {}", bytes, str());
  if (bytes == 0) return;
  if (device_ == Device::cpu) {
    std::memcpy(dst, raw(), bytes);
    return;
  }
#if BERTRAZOR_WITH_CUDA
  BR_CUDA_CHECK(cudaMemcpyAsync(dst, raw(), bytes, cudaMemcpyDeviceToHost, cuda::stream()));
  BR_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
#endif
}

void Tensor::zero_() const { fill_bytes_(0); }

void Tensor::fill_bytes_(uint8_t byte) const {
  if (!defined() || nbytes() == 0) return;
  if (device_ == Device::cpu) {
    std::memset(raw(), byte, nbytes());
    return;
  }
#if BERTRAZOR_WITH_CUDA
  BR_CUDA_CHECK(cudaMemsetAsync(raw(), byte, nbytes(), cuda::stream()));
#endif
}

void check_shape(const char* op, const char* name, const Tensor& t, const Shape& expected) {
  BR_CHECK(t.defined(), "{}: {} is undefined, expected shape {}", op, name, shape_str(expected));
  BR_CHECK(t.shape() == expected, "{}: {} has shape {}, expected {}", op, name, shape_str(t.shape()),
           shape_str(expected));
}

void check_dtype(const char* op, const char* name, const Tensor& t, DType expected) {
  BR_CHECK(t.defined(), "{}: {} is undefined", op, name);
  BR_CHECK(t.dtype() == expected, "{}: {} is {}, expected {}", op, name, t.str(),
           dtype_name(expected));
}

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  BR_CHECK(a.device() == b.device(), "{}: tensors on different devices: {} and {}", op, a.str(),
           b.str());
}

void check_defined(const char* op, const char* name, const Tensor& t) {
  BR_CHECK(t.defined(), "{}: {} is undefined", op, name);
}

void check_like(const char* op, const char* name, const Tensor& t, const Tensor& ref) {
  check_defined(op, name, t);
  check_shape(op, name, t, ref.shape());
  check_dtype(op, name, t, ref.dtype());
  check_same_device(op, ref, t);
}

}  // namespace br
