/* probe: a minimal host that offers mesibo_mod_iot.so module structs the
 * module must refuse (unknown size, wrong signature, wrong version) and
 * checks that init returns -1, logs why through the exported mesibo_log,
 * and that the process goes on. Usage: probe path/to/mesibo_mod_iot.so */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SIG 0xAA55773388FF1100ULL

int logged;

__attribute__((visibility("default"))) intptr_t mesibo_log(void *mod, uintptr_t level, const char *fmt, ...) {
	(void)mod;
	va_list ap;
	va_start(ap, fmt);
	printf("log %lu -- ", (unsigned long)level);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
	logged++;
	return 0;
}

typedef intptr_t (*init_fn)(intptr_t version, void *mod, uintptr_t len, void *cfg);

static int try(init_fn fn, const char *what, intptr_t version, uintptr_t len, size_t sigoff) {
	unsigned char mod[512];
	memset(mod, 0, sizeof mod);
	uint64_t s = SIG;
	if (sigoff) memcpy(mod + sigoff, &s, sizeof s);
	int before = logged;
	intptr_t rc = fn(version, mod, len, NULL);
	printf("case %s rc=%ld logged=%d\n", what, (long)rc, logged - before);
	fflush(stdout);
	return rc == -1 && logged > before;
}

int main(int argc, char **argv) {
	if (argc < 2) return 2;
	void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		printf("dlopen failed: %s\n", dlerror());
		return 2;
	}
	init_fn fn = (init_fn)dlsym(h, "mesibo_module_iot_init");
	if (!fn) return 2;
	int ok = 1;
	ok &= try(fn, "len200", 1, 200, 112);
	ok &= try(fn, "len176-nosig", 1, 176, 0);
	ok &= try(fn, "len192-sig-at-96", 1, 192, 96);
	ok &= try(fn, "version2", 2, 176, 112);
	printf("host goes on: %s\n", ok ? "all refused" : "SOMETHING ACCEPTED");
	return ok ? 0 : 1;
}
