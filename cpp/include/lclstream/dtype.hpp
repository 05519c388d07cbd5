#pragma once
// Element types the core handles, named as numpy names them.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lclstream {

enum class DType : std::uint8_t { u8, i8, u16, i16, u32, i32, u64, i64, f32, f64 };

/// Size of one element in bytes.
std::size_t dtype_size(DType t) noexcept;
/// numpy's name for the type ("uint16", "float32", ...).
std::string_view dtype_name(DType t) noexcept;
/// Parses numpy names ("uint16") and array-protocol codes ("<u2", "u2", "H"); throws ValueError.
DType dtype_from_name(std::string_view name);

}  // namespace lclstream
