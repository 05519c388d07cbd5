// Codec names and HDF5 filter parameters, all read from kCodecTable (lclstream/codec.hpp).
#include <string>

#include "lclstream/codec.hpp"
#include "lclstream/error.hpp"

namespace lclstream {

namespace {
constexpr bool table_in_enum_order() {
  for (std::size_t i = 0; i < kCodecTable.size(); ++i) {
    if (static_cast<std::size_t>(kCodecTable[i].codec) != i) return false;
  }
  return true;
}
static_assert(table_in_enum_order(), "kCodecTable rows must follow the Codec enum");
static_assert(codec_info(Codec::zstd).default_level > 0, "zstd takes a level");
}  // namespace

std::string_view codec_name(Codec c) noexcept { return codec_info(c).name; }

Codec codec_from_name(std::string_view name) {
  std::string known;
  for (const CodecInfo& info : kCodecTable) {
    if (info.name == name) return info.codec;
    known += known.empty() ? "" : ", ";
    known += info.name;
  }
  throw ValueError("unknown codec '" + std::string(name) + "' (expected one of " + known + ")");
}

unsigned hdf5_filter_id(Codec c) noexcept { return codec_info(c).hdf5_filter_id; }

std::vector<unsigned> hdf5_filter_options(Codec c, int level) {
  const CodecInfo& info = codec_info(c);
  std::vector<unsigned> opts;
  if (info.hdf5_block_size_option) opts.push_back(0u);
  if (info.hdf5_compressor != 0) opts.push_back(info.hdf5_compressor);
  if (info.default_level > 0) opts.push_back(static_cast<unsigned>(level > 0 ? level : info.default_level));
  return opts;
}

}  // namespace lclstream
