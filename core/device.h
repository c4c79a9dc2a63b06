// Where a tensor lives. CUDA is usable only when the library was built with it and a device exists.
#pragma once
#include <cstdint>
#include <string_view>

namespace br {

enum class Device : uint8_t { cpu, cuda };

std::string_view device_name(Device d);
Device device_from_name(std::string_view name);  // "cpu" | "cuda"; throws otherwise

bool cuda_built();      // compiled with BERTRAZOR_WITH_CUDA
bool cuda_available();  // built with CUDA and at least one device answers
int cuda_device_count();
void cuda_synchronize();  // no-op without CUDA

}  // namespace br
