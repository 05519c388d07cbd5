#pragma once
// Per-ISA fill kernels of the sparse lists (internal; reached through sparse.cpp's dispatch).
// Each appends the nonzero pixels of one frame to idx/val and returns how many it wrote; idx/val
// have room for n + kSlack entries (whole vectors are stored past the last entry).
#include <cstddef>
#include <cstdint>

namespace lclstream::sparse::detail {

inline constexpr std::size_t kSlack = 64;

std::size_t fill_avx512(const std::uint16_t* p, std::size_t n, std::uint32_t* idx, std::uint16_t* val);
std::size_t fill_avx512(const std::uint32_t* p, std::size_t n, std::uint32_t* idx, std::uint32_t* val);

}  // namespace lclstream::sparse::detail
