/*
 * regress.c — runs conf_fuzz.c's LLVMFuzzerTestOneInput on each file named
 * on the command line, without libFuzzer: the checked-in corpus as a
 * regression test where clang's fuzzer runtime is not installed (gcc with
 * -fsanitize=address,undefined). run.sh --regress uses it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (!f) {
			perror(argv[i]);
			return 2;
		}
		uint8_t *buf = NULL;
		size_t n = 0, cap = 0;
		for (;;) {
			if (n == cap) {
				cap = cap ? 2 * cap : 4096;
				uint8_t *nb = realloc(buf, cap);
				if (!nb) {
					fclose(f);
					free(buf);
					return 2;
				}
				buf = nb;
			}
			size_t r = fread(buf + n, 1, cap - n, f);
			if (r == 0)
				break;
			n += r;
		}
		fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
		free(buf);
	}
	printf("conf_parse: %d inputs ok\n", argc - 1);
	return 0;
}
