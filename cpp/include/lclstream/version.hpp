#pragma once
#include <string_view>

namespace lclstream {
/// The library's version ("0.1.0"), the same as the Python package's.
std::string_view version() noexcept;
}  // namespace lclstream
