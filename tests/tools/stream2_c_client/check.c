#define main example_main
#include "example.c"
#undef main
int main(int argc, char** argv) {
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        FILE* f = fopen(argv[i], "rb");
        fseek(f, 0, SEEK_END); long n = ftell(f); fseek(f, 0, SEEK_SET);
        uint8_t* buf = malloc((size_t)n); fread(buf, 1, (size_t)n, f); fclose(f);
        if (parse_msg(buf, (size_t)n) != STREAM2_OK) { printf("FAIL %s\n", argv[i]); bad = 1; }
        free(buf);
    }
    return bad;
}
