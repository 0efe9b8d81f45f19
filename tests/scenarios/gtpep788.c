/*
 * gtpep788: PEP 788's interpreter guards and thread-state tokens (CPython
 * 3.15+), called from C, where the shim sees them (its wrappers of these
 * are reached through the GOT slots it routes, not through dlsym or ctypes:
 * shim/wrap-capi.c).  Builds only against 3.15+ headers; written from
 * CPython's documentation of PEP 788 alone (no 3.15 interpreter was at
 * hand), so the token's type is taken from PyThreadState_Ensure itself.
 * tests/test_pep788.py drives it and skips where no interpreter has PEP 788.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>

#if PY_VERSION_HEX < 0x030F0000
#error "gtpep788 needs CPython 3.15 (PEP 788)"
#endif

/* A guard that is never closed: Py_FinalizeEx waits for it for good. */
static PyObject *guard_left_open(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
	PyInterpreterGuard *guard = PyInterpreterGuard_FromCurrent();

	if (!guard)
		return NULL;
	return PyLong_FromVoidPtr(guard);
}

/* Ensure once, release twice: the second release is CPython's fatal error. */
static PyObject *release_twice(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
	PyInterpreterGuard *guard = PyInterpreterGuard_FromCurrent();

	if (!guard)
		return NULL;
	__typeof__(PyThreadState_Ensure(guard)) token = PyThreadState_Ensure(guard);
	if (!token) {
		PyInterpreterGuard_Close(guard);
		return PyErr_NoMemory();
	}
	PyThreadState_Release(token);
	PyInterpreterGuard_Close(guard);
	printf("released once\n");
	fflush(stdout);
	PyThreadState_Release(token);
	Py_RETURN_NONE;
}

static PyMethodDef gtpep788_methods[] = {
	{ "guard_left_open", guard_left_open, METH_NOARGS,
	  "Make an interpreter guard and never close it; return its address." },
	{ "release_twice", release_twice, METH_NOARGS,
	  "PyThreadState_Ensure once and PyThreadState_Release twice." },
	{ NULL, NULL, 0, NULL }
};

static struct PyModuleDef gtpep788_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "gtpep788",
	.m_doc = "PEP 788's guards and tokens, misused on purpose.",
	.m_size = -1,
	.m_methods = gtpep788_methods,
};

PyMODINIT_FUNC PyInit_gtpep788(void)
{
	return PyModule_Create(&gtpep788_module);
}
