#include "lclstream/version.hpp"

namespace lclstream {
std::string_view version() noexcept { return LCLSTREAM_VERSION_STRING; }
}  // namespace lclstream
