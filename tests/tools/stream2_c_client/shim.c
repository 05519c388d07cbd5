#include <stdint.h>
#include <string.h>
#include "compression/src/compression.h"
#include "bitshuffle/src/bitshuffle.h"
static uint64_t be64(const unsigned char* b){uint64_t v=0;for(int i=0;i<8;i++)v=(v<<8)|b[i];return v;}
static uint32_t be32(const unsigned char* b){return ((uint32_t)b[0]<<24)|((uint32_t)b[1]<<16)|((uint32_t)b[2]<<8)|b[3];}
size_t compression_decompress_buffer(CompressionAlgorithm algorithm, char* dst, size_t dst_size,
                                     const char* src, size_t src_size, size_t elem_size) {
    if (algorithm != COMPRESSION_BSLZ4 || src_size < 12 || elem_size == 0) return COMPRESSION_ERROR;
    const unsigned char* s = (const unsigned char*)src;
    uint64_t n = be64(s); uint32_t bs = be32(s + 8);
    if (!dst) return (size_t)n;
    if (dst_size < n) return COMPRESSION_ERROR;
    int64_t used = bshuf_decompress_lz4(s + 12, dst, n / elem_size, elem_size, bs / elem_size);
    if (used < 0 || (size_t)used + 12 != src_size) return COMPRESSION_ERROR;
    return (size_t)n;
}
