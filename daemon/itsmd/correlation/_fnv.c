/* Alertmanager fingerprints of label sets, compiled: the same values as the Python
 * code in fingerprint.py (FNV-1a 64 over `name 0xff value 0xff` per label, by name,
 * printed as 16 lowercase hex digits), over ten times faster (bench/RESULTS.md).
 *
 * It holds the GIL throughout, deliberately: a call takes well under a microsecond
 * per label set, and releasing the GIL around it would make the event loop, which
 * checks every webhook's fingerprints, wait for the writer thread to give it back.
 *
 * A label set it does not take on (not exactly a dict of str, or a str that is not
 * valid UTF-8, such as a lone surrogate) gets None: the Python code decides those. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>

#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME 0x100000001b3ULL

static uint64_t
fnv1a_64(uint64_t hash, const char *data, Py_ssize_t size)
{
    const unsigned char *byte = (const unsigned char *)data;
    for (Py_ssize_t i = 0; i < size; i++) {
        hash ^= byte[i];
        hash *= FNV64_PRIME;
    }
    return hash;
}

static uint64_t
separated(uint64_t hash)
{
    hash ^= 0xff;
    return hash * FNV64_PRIME;
}

/* Adds `text` as UTF-8: 1; 0 if it has none (a lone surrogate; the error cleared);
 * -1 on another error (memory), left set. */
static int
add_text(uint64_t *hash, PyObject *text)
{
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &size);
    if (utf8 == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            return -1;
        }
        PyErr_Clear();
        return 0;
    }
    *hash = separated(fnv1a_64(*hash, utf8, size));
    return 1;
}

/* A new reference: the fingerprint, None, or NULL with an error set. */
static PyObject *
one(PyObject *labels)
{
    if (!PyDict_CheckExact(labels)) {
        Py_RETURN_NONE;
    }
    PyObject *name, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(labels, &pos, &name, &value)) {
        if (!PyUnicode_CheckExact(name) || !PyUnicode_CheckExact(value)) {
            Py_RETURN_NONE;
        }
    }
    PyObject *names = PyDict_Keys(labels);
    if (names == NULL) {
        return NULL;
    }
    /* str compares by code point, which is UTF-8's byte order: Go's sort of names. */
    if (PyList_Sort(names) < 0) {
        Py_DECREF(names);
        return NULL;
    }
    uint64_t hash = FNV64_OFFSET;
    Py_ssize_t count = PyList_GET_SIZE(names);
    for (Py_ssize_t i = 0; i < count; i++) {
        name = PyList_GET_ITEM(names, i);
        value = PyDict_GetItemWithError(labels, name);
        if (value == NULL) {
            Py_DECREF(names);
            if (PyErr_Occurred()) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
        int added = add_text(&hash, name);
        if (added == 1) {
            added = add_text(&hash, value);
        }
        if (added != 1) {
            Py_DECREF(names);
            if (added < 0) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
    }
    Py_DECREF(names);
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)hash);
    return PyUnicode_FromStringAndSize(hex, 16);
}

static PyObject *
fingerprint(PyObject *module, PyObject *labels)
{
    return one(labels);
}

static PyObject *
fingerprints(PyObject *module, PyObject *label_sets)
{
    PyObject *sets = PySequence_Fast(label_sets, "expected a sequence of label sets");
    if (sets == NULL) {
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(sets);
    PyObject *result = PyList_New(count);
    if (result == NULL) {
        Py_DECREF(sets);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *value = one(PySequence_Fast_GET_ITEM(sets, i));
        if (value == NULL) {
            Py_DECREF(sets);
            Py_DECREF(result);
            return NULL;
        }
        PyList_SET_ITEM(result, i, value);
    }
    Py_DECREF(sets);
    return result;
}

static PyMethodDef methods[] = {
    {"fingerprint", fingerprint, METH_O,
     "The fingerprint of one label set, or None for the Python code to decide."},
    {"fingerprints", fingerprints, METH_O,
     "`fingerprint` of each label set of a sequence, as a list."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fnv", "Alertmanager fingerprints, compiled.", -1, methods,
};

PyMODINIT_FUNC
PyInit__fnv(void)
{
    return PyModule_Create(&module);
}
