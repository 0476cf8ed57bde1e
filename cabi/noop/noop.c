/* mesibo_mod_gonoop.so: the baseline for the PASS-path benchmark — a Go
 * c-shared module whose on_message crosses into Go with the same arguments
 * as mesibo-iot's and returns PASS without doing anything. Document ABI only. */
#include "../module.h"
#include "_cgo_export.h"

static mesibo_int_t noop_on_message(mesibo_module_t *mod, mesibo_message_params_t *p,
                                    const char *msg, mesibo_uint_t len) {
	return gonoop_on_message((uintptr_t)mod->ctx, p, (char *)msg, len);
}

mesibo_int_t mesibo_module_gonoop_init(mesibo_int_t version, mesibo_module_t *mod,
                                       mesibo_uint_t len, module_configs_t *cfg) {
	(void)cfg;
	if (version != MESIBO_MODULE_VERSION || len != sizeof(mesibo_module_t) ||
	    mod->signature != MESIBO_MODULE_SIGNATURE)
		return MESIBO_RESULT_FAIL;
	mod->name = "gonoop";
	mod->ctx = (void *)1;
	mod->on_message = noop_on_message;
	return MESIBO_RESULT_OK;
}
