#include "lclstream/dtype.hpp"

#include <array>
#include <string>

#include "lclstream/error.hpp"

namespace lclstream {
namespace {
struct DTypeInfo {
  DType type;
  std::size_t size;
  std::string_view name;
  std::string_view code;   // array-protocol code without byte order
  std::string_view chr;    // numpy's single-character code
};
constexpr std::array<DTypeInfo, 10> kInfo{{
    {DType::u8, 1, "uint8", "u1", "B"},   {DType::i8, 1, "int8", "i1", "b"},
    {DType::u16, 2, "uint16", "u2", "H"}, {DType::i16, 2, "int16", "i2", "h"},
    {DType::u32, 4, "uint32", "u4", "I"}, {DType::i32, 4, "int32", "i4", "i"},
    {DType::u64, 8, "uint64", "u8", "Q"}, {DType::i64, 8, "int64", "i8", "q"},
    {DType::f32, 4, "float32", "f4", "f"}, {DType::f64, 8, "float64", "f8", "d"},
}};
}  // namespace

std::size_t dtype_size(DType t) noexcept { return kInfo[static_cast<std::size_t>(t)].size; }
std::string_view dtype_name(DType t) noexcept { return kInfo[static_cast<std::size_t>(t)].name; }

DType dtype_from_name(std::string_view name) {
  std::string_view n = name;
  if (!n.empty() && (n.front() == '<' || n.front() == '=' || n.front() == '|')) n.remove_prefix(1);
  for (const auto& info : kInfo) {
    if (n == info.name || n == info.code || n == info.chr) return info.type;
  }
  throw ValueError("unsupported dtype '" + std::string(name) +
                   "' (allowed: uint8, int8, uint16, int16, uint32, int32, uint64, int64, "
                   "float32, float64, little-endian)");
}

}  // namespace lclstream
