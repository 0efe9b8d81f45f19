/*
 * got-patch.c: routing the C-API imports of loaded objects to the wrappers.
 *
 * Design note.  A preloaded definition of PyEval_RestoreThread is not
 * enough: the dynamic linker looks symbols up in the main executable
 * first, so on a static interpreter (Debian's python3, libpython linked
 * into the executable) every extension module binds to the executable's
 * own definition and never reaches the wrapper (docs/cpython-internals.md §5).
 * So, like memray's allocator hooks, the shim rewrites the relocated GOT
 * slots (R_X86_64_JUMP_SLOT: calls through the PLT; R_X86_64_GLOB_DAT:
 * -fno-plt calls and address-taken functions) of every loaded object that
 * imports a wrapped function, at activation and again after each dlopen().
 * A slot is rewritten only if it holds the interpreter's definition or a
 * PLT entry of its own object (not bound yet): a slot someone else hooked is left
 * alone.  Slots in a RELRO segment are made writable for the one store.
 *
 * The interpreter's own calls (take_gil's callers, t_bootstrap, ...) are
 * seen only where it calls its C-API through its PLT: a shared libpython
 * built without -fno-semantic-interposition (the pyenv builds).  The
 * header's GTR_BUILD_PLT_ROUTED says so when the object that defines
 * _PyRuntime imports a wrapped function.  Static and optimised builds call
 * them directly; hooking those calls would mean patching function entries,
 * which the shim does not do.
 *
 * What it cannot see: calls through function pointers taken before the
 * patch (a pointer copied out of a GOT slot at start-up), and objects
 * loaded without dlopen() after activation (none in CPython).
 */
#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shim.h"

#define MAX_SEEN_OBJECTS 1024

struct patch_run {
	uintptr_t own_base;          /* libgiltrace.so itself: never patched */
	uint32_t build_flags;        /* GTR_BUILD_PLT_ROUTED if found */
};

static uintptr_t seen_objects[MAX_SEEN_OBJECTS];
static unsigned seen_count;
static uint32_t slots_routed;
static pthread_mutex_t patch_lock = PTHREAD_MUTEX_INITIALIZER;

/* Which wrapped function `name` is, or GTR_CAPI_NONE. */
static enum gtr_capi wrapped_function(const char *name)
{
	if (name[0] != 'P' || name[1] != 'y')
		return GTR_CAPI_NONE;
	for (unsigned i = 1; i < GTR_CAPI_COUNT; i++)
		if (strcmp(name, gtr_capi_names[i]) == 0)
			return (enum gtr_capi)i;
	return GTR_CAPI_NONE;
}

struct object_layout {
	uintptr_t base, lo, hi;      /* load bias and the extent of PT_LOADs */
	uintptr_t relro_lo, relro_hi;
	const ElfW(Sym) *symtab;
	const char *strtab;
	const ElfW(Rela) *rela[2];
	size_t rela_count[2];
};

static bool inside(const struct object_layout *o, uintptr_t p, size_t size)
{
	return p >= o->lo && p + size <= o->hi && p + size >= p;
}

/* Pointers in a loaded object's dynamic section are relocated by ld.so,
 * except in objects it maps read-only (the vDSO): add the bias there. */
static uintptr_t dyn_ptr(const struct object_layout *o, ElfW(Addr) value)
{
	return value < o->base ? o->base + value : value;
}

static bool read_layout(const struct dl_phdr_info *info, struct object_layout *o)
{
	const ElfW(Dyn) *dyn = NULL;
	memset(o, 0, sizeof *o);
	o->base = info->dlpi_addr;
	o->lo = UINTPTR_MAX;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
		if (ph->p_type == PT_LOAD) {
			if (start < o->lo)
				o->lo = start;
			if (end > o->hi)
				o->hi = end;
		} else if (ph->p_type == PT_DYNAMIC) {
			dyn = (const ElfW(Dyn) *)start;
		} else if (ph->p_type == PT_GNU_RELRO) {
			o->relro_lo = start;
			o->relro_hi = end;
		}
	}
	if (!dyn || o->lo >= o->hi)
		return false;
	size_t pltrel_size = 0, rela_size = 0;
	uintptr_t jmprel = 0, rela = 0;
	bool plt_is_rela = true;
	for (; dyn->d_tag != DT_NULL; dyn++) {
		switch (dyn->d_tag) {
		case DT_SYMTAB: o->symtab = (const ElfW(Sym) *)dyn_ptr(o, dyn->d_un.d_ptr); break;
		case DT_STRTAB: o->strtab = (const char *)dyn_ptr(o, dyn->d_un.d_ptr); break;
		case DT_JMPREL: jmprel = dyn_ptr(o, dyn->d_un.d_ptr); break;
		case DT_PLTRELSZ: pltrel_size = dyn->d_un.d_val; break;
		case DT_PLTREL: plt_is_rela = dyn->d_un.d_val == DT_RELA; break;
		case DT_RELA: rela = dyn_ptr(o, dyn->d_un.d_ptr); break;
		case DT_RELASZ: rela_size = dyn->d_un.d_val; break;
		}
	}
	if (!o->symtab || !o->strtab || !inside(o, (uintptr_t)o->symtab, 1) || !inside(o, (uintptr_t)o->strtab, 1))
		return false;
	if (jmprel && plt_is_rela && inside(o, jmprel, pltrel_size)) {
		o->rela[0] = (const ElfW(Rela) *)jmprel;
		o->rela_count[0] = pltrel_size / sizeof(ElfW(Rela));
	}
	if (rela && inside(o, rela, rela_size)) {
		o->rela[1] = (const ElfW(Rela) *)rela;
		o->rela_count[1] = rela_size / sizeof(ElfW(Rela));
	}
	return true;
}

/* Store `value` in a GOT slot, lifting RELRO's write protection for it. */
static bool store_slot(const struct object_layout *o, void **slot, void *value)
{
	uintptr_t p = (uintptr_t)slot;
	if (p < o->relro_lo || p >= o->relro_hi) {
		__atomic_store_n(slot, value, __ATOMIC_RELEASE);
		return true;
	}
	long page = sysconf(_SC_PAGESIZE);
	void *start = (void *)(p & ~(uintptr_t)(page - 1));
	if (mprotect(start, (size_t)page, PROT_READ | PROT_WRITE) != 0)
		return false;
	__atomic_store_n(slot, value, __ATOMIC_RELEASE);
	mprotect(start, (size_t)page, PROT_READ);
	return true;
}

static void patch_relocations(const struct object_layout *o, bool is_runtime, struct patch_run *run)
{
	for (int table = 0; table < 2; table++) {
		for (size_t i = 0; i < o->rela_count[table]; i++) {
			const ElfW(Rela) *r = &o->rela[table][i];
			unsigned type = ELF64_R_TYPE(r->r_info);
			if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
				continue;
			const ElfW(Sym) *sym = &o->symtab[ELF64_R_SYM(r->r_info)];
			if (!inside(o, (uintptr_t)sym, sizeof *sym) || !inside(o, (uintptr_t)o->strtab + sym->st_name, 1))
				continue;
			enum gtr_capi fn = wrapped_function(o->strtab + sym->st_name);
			void **slot = (void **)(o->base + r->r_offset);
			if (fn == GTR_CAPI_NONE || !inside(o, (uintptr_t)slot, sizeof *slot))
				continue;
			if (is_runtime)
				run->build_flags |= GTR_BUILD_PLT_ROUTED;
			void *wrapper = capi_wrappers[fn];
			void *now = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
			if (now == wrapper)
				continue; /* bound to the preload already */
			bool unresolved_plt_entry = (uintptr_t)now >= o->lo && (uintptr_t)now < o->hi;
			/* no definition (a weak import of PEP 788's on 3.14): the
			 * program's own test for it must keep finding none */
			void *real = capi_real(fn);
			if (real && (now == real || unresolved_plt_entry) && store_slot(o, slot, wrapper))
				slots_routed++;
		}
	}
}

static int patch_object(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	struct patch_run *run = data;
	if (info->dlpi_addr == run->own_base)
		return 0;
	for (unsigned i = 0; i < seen_count; i++)
		if (seen_objects[i] == info->dlpi_addr)
			return 0;
	if (seen_count < MAX_SEEN_OBJECTS)
		seen_objects[seen_count++] = info->dlpi_addr;
	struct object_layout o;
	if (read_layout(info, &o))
		patch_relocations(&o, inside(&o, (uintptr_t)shim_python.runtime, 1), run);
	return 0;
}

void got_patch_loaded_objects(void)
{
	Dl_info self;
	struct patch_run run = { 0, 0 };
	if (dladdr((void *)got_patch_loaded_objects, &self))
		run.own_base = (uintptr_t)self.dli_fbase;
	capi_resolve();
	shim_real.mutex_lock(&patch_lock);
	dl_iterate_phdr(patch_object, &run);
	uint32_t routed = slots_routed;
	shim_real.mutex_unlock(&patch_lock);
	recorder_note_capi_routing(run.build_flags, routed);
}
