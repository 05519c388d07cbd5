#pragma once
// Which instruction-set implementation the kernels use. Chosen once at run time from what
// the CPU supports (best first); LCLSTREAM_ISA=scalar|avx2|avx512 forces one, and tests
// switch between them to compare every ISA bit-exactly with the scalar reference.
#include <string_view>
#include <vector>

namespace lclstream {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

std::string_view isa_name(Isa isa) noexcept;
/// Parses "scalar" / "avx2" / "avx512"; throws ValueError.
Isa isa_from_name(std::string_view name);
/// Implementations this CPU can run, best first (always ends with scalar).
std::vector<Isa> available_isas();
/// The implementation in use (LCLSTREAM_ISA or the best available).
Isa active_isa() noexcept;
/// Switches the implementation (ValueError if the CPU cannot run it). Not thread-safe
/// against running kernels: meant for tests and benchmarks.
void set_isa(Isa isa);

}  // namespace lclstream
