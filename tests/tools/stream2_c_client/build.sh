#!/usr/bin/env bash
# Build DECTRIS' reference stream2 C client (dectris/documentation stream_v2/examples:
# stream2.c + example.c's printers) as a file checker, to prove it parses our messages.
# Needs the sources (not vendored): DOC=dectris/documentation checkout, TINYCBOR=intel/tinycbor
# checkout, BITSHUFFLE=kiyo-masui/bitshuffle checkout; Debian's liblz4-dev and libzmq3-dev.
# Usage: DOC=... TINYCBOR=... BITSHUFFLE=... build.sh OUTDIR   → OUTDIR/check FILE.cbor...
# (shim.c stands in for dectris/compression, whose bitshuffle fork is a submodule, with the
# upstream bshuf_decompress_lz4: the same 32008 bytes.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"/tinycbor "$out"/compression/src "$out"/bitshuffle/src "$out"/lz4/lib
cp -r "$TINYCBOR/src" "$out/tinycbor/"
printf '#define TINYCBOR_VERSION_MAJOR 0\n#define TINYCBOR_VERSION_MINOR 6\n#define TINYCBOR_VERSION_PATCH 0\n' > "$out/tinycbor/src/tinycbor-version.h"
printf '#ifndef CBOR_API\n#define CBOR_API\n#endif\n' > "$out/tinycbor/src/tinycbor-export.h"
for f in stream2.c stream2.h example.c; do cp "$DOC/stream_v2/examples/$f" "$out/"; done
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' '#define COMPRESSION_ERROR SIZE_MAX' \
  'typedef enum { COMPRESSION_BSLZ4, COMPRESSION_LZ4 } CompressionAlgorithm;' \
  'size_t compression_decompress_buffer(CompressionAlgorithm, char*, size_t, const char*, size_t, size_t);' \
  > "$out/compression/src/compression.h"
for f in bitshuffle.h bitshuffle.c bitshuffle_core.h bitshuffle_core.c bitshuffle_internals.h iochain.h iochain.c; do
  cp "$BITSHUFFLE/src/$f" "$out/bitshuffle/src/"
done
ln -sf /usr/include/lz4.h "$out/lz4/lib/lz4.h"
cp "$here/check.c" "$here/shim.c" "$out/"
cd "$out"
t=tinycbor/src
gcc -O1 -w -I$t -I. -Icompression -Ibitshuffle check.c shim.c stream2.c $t/cborparser.c \
  $t/cborparser_dup_string.c $t/cborerrorstrings.c $t/cborvalidation.c $t/cborpretty.c \
  $t/cborpretty_stdio.c bitshuffle/src/bitshuffle.c bitshuffle/src/bitshuffle_core.c \
  bitshuffle/src/iochain.c -lzmq -llz4 -o check
echo "$out/check"
