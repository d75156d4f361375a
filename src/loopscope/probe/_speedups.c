/* loopscope.probe._speedups: the loop-step hooks of `loopscope.probe.loop`, in C.
 *
 * They do exactly what the pure-Python wrappers in loop.py do (those stay as the fallback and
 * the reference, and the tests compare the two), but a Python wrapper costs a frame, a dozen
 * attribute lookups and two boxed clock reads on every step of the event loop, which is most
 * of what the probe costs a busy server (`make bench`). Here the clock is read with
 * clock_gettime, the same CLOCK_MONOTONIC as `time.monotonic_ns()`.
 *
 * Both hook types are method descriptors with vectorcall, like Python functions: set as a class
 * attribute (`Handle._run`, `BaseEventLoop._call_soon`) they are called with the instance as
 * the first argument and no bound method is built. A handle's `_loop` and `_context` slots are
 * read at their offsets when it is exactly a Handle or TimerHandle. `RequestWatcher` does the
 * per-request bookkeeping of the ASGI middleware (`loopscope.probe.asgi`). Nothing here raises
 * into the app: the probe's own failures are counted in the recorder's `errors`, and an
 * exception from a wrapped original passes through untouched. `StallGate` is the watchdog
 * thread's wait in precise mode, which looks at the step hook without taking the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <time.h>

/* Steps take their events from the recorder's budget this many at a time (as loop.py does). */
#define BUDGET_CHUNK 256
/* A finished request's missing status, and a text that is not a string (packed.py). */
#define NO_STATUS LLONG_MIN
#define NO_TEXT (-1)
static PyObject *str_route, *str_app_root_path, *str_fastapi, *str_route_context;
static PyObject *str_loop, *str_context, *str_get, *str_take, *str_when, *str_current_step;
static PyObject *str_method, *str_path, *str_headers, *str_type, *str_status;
static PyObject *str_response_start, *str_used, *str_capacity;
static PyObject *str_fail;
static PyObject *str_dropped, *str_unrecorded, *str_errors, *str_serial, *str_ready, *str_append;
static PyObject *one, *chunk;

/* The clock in ns; 0 when it cannot be read (a thread's CPU clock once the thread is gone). */
static inline long long
clock_ns(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0) {
        return 0;
    }
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* recorder.<name> += 1, swallowing any error (called with no exception pending). */
static void
bump(PyObject *recorder, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(recorder, name);
    if (value != NULL) {
        PyObject *more = PyNumber_Add(value, one);
        Py_DECREF(value);
        if (more != NULL) {
            PyObject_SetAttr(recorder, name, more);
            Py_DECREF(more);
        }
    }
    PyErr_Clear();
}

/* bytearray.extend(`size` bytes at `bytes`): grows as bytearray does, by an eighth at a time. */
static int
bytes_append(PyObject *array, const void *bytes, Py_ssize_t size)
{
    Py_ssize_t used = PyByteArray_GET_SIZE(array);
    if (PyByteArray_Resize(array, used + size) < 0) {
        return -1;
    }
    memcpy(PyByteArray_AS_STRING(array) + used, bytes, (size_t)size);
    return 0;
}

/* FinishedLog.texts: each of `values` as an int32 UTF-8 length (NO_TEXT for what is not an
 * encodable string) and its bytes, appended in one go (packed.pack_text). */
static int
texts_append(PyObject *array, PyObject *const *values, int count)
{
    const char *data[4];
    int32_t lengths[4];
    Py_ssize_t total = 0;
    for (int i = 0; i < count && i < 4; i++) {
        data[i] = NULL;
        lengths[i] = NO_TEXT;
        if (values[i] != NULL && PyUnicode_Check(values[i])) {
            Py_ssize_t size;
            const char *utf8 = PyUnicode_AsUTF8AndSize(values[i], &size);
            if (utf8 == NULL) {
                PyErr_Clear(); /* a lone surrogate: stored as no text */
            }
            else if (size <= INT32_MAX) {
                data[i] = utf8;
                lengths[i] = (int32_t)size;
            }
        }
        total += (Py_ssize_t)sizeof(int32_t) + (lengths[i] > 0 ? lengths[i] : 0);
    }
    Py_ssize_t used = PyByteArray_GET_SIZE(array);
    if (PyByteArray_Resize(array, used + total) < 0) {
        return -1;
    }
    char *out = PyByteArray_AS_STRING(array) + used;
    for (int i = 0; i < count && i < 4; i++) {
        memcpy(out, &lengths[i], sizeof(int32_t));
        out += sizeof(int32_t);
        if (lengths[i] > 0) {
            memcpy(out, data[i], (size_t)lengths[i]);
            out += lengths[i];
        }
    }
    return 0;
}

/* obj.<name>, checked to be exactly of `type` (new reference; NULL with TypeError otherwise). */
static PyObject *
typed_attr(PyObject *obj, const char *name, PyTypeObject *type, const char *what)
{
    PyObject *value = PyObject_GetAttrString(obj, name);
    if (value != NULL && !Py_IS_TYPE(value, type)) {
        PyErr_Format(PyExc_TypeError, "%s must be a %s", what, type->tp_name);
        Py_CLEAR(value);
    }
    return value;
}

/* Where asyncio's Handle keeps its `_loop` and `_context` slots, to read them without a lookup. */
typedef struct {
    PyTypeObject *handle_type;
    PyTypeObject *timer_type; /* a subclass that adds slots after the base's */
    Py_ssize_t loop_offset;
    Py_ssize_t context_offset;
    Py_ssize_t callback_offset;
    Py_ssize_t args_offset;
} HandleLayout;

/* The offset of `type`'s own object slot `name`, or -1 (then attributes are looked up). */
static Py_ssize_t
slot_offset(PyTypeObject *type, const char *name)
{
    PyObject *descr = PyDict_GetItemString(type->tp_dict, name); /* borrowed */
    if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type) ||
        PyDescr_TYPE(descr) != type) {
        return -1;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != T_OBJECT_EX || member->offset < 0 ||
        member->offset + (Py_ssize_t)sizeof(PyObject *) > type->tp_basicsize) {
        return -1;
    }
    return member->offset;
}

static int
layout_init(HandleLayout *layout, PyObject *handle_type, PyObject *timer_type)
{
    if (!PyType_Check(handle_type) || !PyType_Check(timer_type) ||
        !PyType_IsSubtype((PyTypeObject *)timer_type, (PyTypeObject *)handle_type)) {
        PyErr_SetString(PyExc_TypeError, "expected asyncio's Handle and TimerHandle types");
        return -1;
    }
    /* asyncio's classes live as long as the process; the references keep that so. */
    layout->handle_type = (PyTypeObject *)Py_NewRef(handle_type);
    layout->timer_type = (PyTypeObject *)Py_NewRef(timer_type);
    layout->loop_offset = slot_offset(layout->handle_type, "_loop");
    layout->context_offset = slot_offset(layout->handle_type, "_context");
    layout->callback_offset = slot_offset(layout->handle_type, "_callback");
    layout->args_offset = slot_offset(layout->handle_type, "_args");
    return 0;
}

/* handle.<name> as a new reference (NULL with an exception when unset). */
static inline PyObject *
handle_slot(HandleLayout *layout, PyObject *handle, Py_ssize_t offset, PyObject *name)
{
    PyTypeObject *type = Py_TYPE(handle);
    if (offset >= 0 && type != NULL &&
        (type == layout->handle_type || type == layout->timer_type)) {
        PyObject *value = *(PyObject **)((char *)handle + offset);
        if (value != NULL) {
            return Py_NewRef(value);
        }
    }
    return PyObject_GetAttr(handle, name);
}

/* Clear the pending error and count it. */
/* A KeyboardInterrupt or SystemExit raised in the probe's bookkeeping (a signal handler can
 * run inside any Python code it calls) is no failure of the probe: it is kept here and raised
 * when the hook returns (`with_pending`), as the pure-Python hooks let it through. */
static PyObject *pending_type, *pending_value, *pending_tb;

/* The probe's own failure, pending: counted in `errors` and cleared; one that is not an
 * Exception is kept for `with_pending`. */
static void
bump_after_clear(PyObject *recorder, const char *hook)
{
    if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_Exception) && pending_type == NULL) {
        PyErr_Fetch(&pending_type, &pending_value, &pending_tb);
        return;
    }
    /* The cause is kept by `recorder.fail(hook, exc)`; failures are rare, so the Python call
     * costs nothing on the hot path. */
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    if (type == NULL) {
        bump(recorder, str_errors);
        return;
    }
    PyErr_NormalizeException(&type, &exc, &tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    if (exc == NULL) {
        bump(recorder, str_errors);
        return;
    }
    PyObject *name = PyUnicode_FromString(hook);
    PyObject *result = name ? PyObject_CallMethodObjArgs(recorder, str_fail, name, exc, NULL)
                            : NULL;
    Py_XDECREF(name);
    Py_DECREF(exc);
    if (result == NULL) {
        PyErr_Clear();
        bump(recorder, str_errors);
    }
    Py_XDECREF(result);
}

/* What a hook returns: `result`, or NULL with the exception kept by `bump_after_clear`. */
static PyObject *
with_pending(PyObject *result)
{
    if (pending_type == NULL) {
        return result;
    }
    Py_XDECREF(result);
    PyErr_Clear();
    PyErr_Restore(pending_type, pending_value, pending_tb);
    pending_type = pending_value = pending_tb = NULL;
    return NULL;
}

/* The request id in `handle`'s context (new reference, Py_None when unset), NULL on error. */
static PyObject *
request_of(HandleLayout *layout, PyObject *handle, PyObject *var)
{
    PyObject *context = handle_slot(layout, handle, layout->context_offset, str_context);
    if (context == NULL) {
        return NULL;
    }
    PyObject *found = PyObject_CallMethodOneArg(context, str_get, var);
    Py_DECREF(context);
    return found;
}

static PyObject *
hook_descr_get(PyObject *self, PyObject *obj, PyObject *Py_UNUSED(type))
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

/* ---- The recorder's counters and running requests ------------------------------------------ */

/* Where a Recorder keeps `used`, `capacity` and `serial` (-1: look them up by name). They are
 * read and written at their offsets: an attribute lookup costs more than the rest of a
 * request's bookkeeping. */
typedef struct {
    Py_ssize_t used, capacity, serial;
} RecorderSlots;

static void
recorder_slots_init(RecorderSlots *slots, PyObject *recorder)
{
    PyTypeObject *type = Py_TYPE(recorder);
    slots->used = slot_offset(type, "used");
    slots->capacity = slot_offset(type, "capacity");
    slots->serial = slot_offset(type, "serial");
}

/* recorder.<name> as a C integer: 0, or -1 with an exception. */
static int
counter_get(PyObject *recorder, Py_ssize_t offset, PyObject *name, long long *value)
{
    PyObject *obj = offset >= 0 ? Py_XNewRef(*(PyObject **)((char *)recorder + offset))
                                : PyObject_GetAttr(recorder, name);
    if (obj == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetObject(PyExc_AttributeError, name);
        }
        return -1;
    }
    *value = PyLong_AsLongLong(obj);
    Py_DECREF(obj);
    return *value == -1 && PyErr_Occurred() ? -1 : 0;
}

/* recorder.<name> = value: 0, or -1 with an exception. */
static int
counter_set(PyObject *recorder, Py_ssize_t offset, PyObject *name, long long value)
{
    PyObject *obj = PyLong_FromLongLong(value);
    if (obj == NULL) {
        return -1;
    }
    if (offset >= 0) {
        Py_XSETREF(*(PyObject **)((char *)recorder + offset), obj);
        return 0;
    }
    int failed = PyObject_SetAttr(recorder, name, obj);
    Py_DECREF(obj);
    return failed;
}

typedef struct RequestWatcher RequestWatcher;

/* One request being watched (see RequestWatcher below); the recorder's `live` holds it. */
typedef struct {
    PyObject_HEAD
    RequestWatcher *watcher;
    PyObject *send; /* the server's */
    PyObject *request_id;
    PyObject *token; /* of REQUEST_ID.set, NULL once reset */
    PyObject *method;
    PyObject *path;
    PyObject *status; /* of http.response.start, NULL before */
    long long start;
    long long first_step;
    long long end; /* the last message's hand-over, 0 before */
    long long serial;
    vectorcallfunc vectorcall;
} RequestWatch;

static PyTypeObject RequestWatchType;

/* recorder.ref_of: what a step of `request_id` stores, the serial of the running request with
 * that id, else the id's number in `late` (given on first sight): 0, or -1 with an exception. */
static int
ref_of(PyObject *live, PyObject *late, PyObject *request_id, long long *ref)
{
    PyObject *row = PyDict_GetItemWithError(live, request_id); /* borrowed */
    if (row != NULL) {
        if (Py_IS_TYPE(row, &RequestWatchType)) {
            *ref = ((RequestWatch *)row)->serial;
            return 0;
        }
        if (PyTuple_Check(row) && PyTuple_GET_SIZE(row) == 5) { /* recorder.LiveRow */
            *ref = PyLong_AsLongLong(PyTuple_GET_ITEM(row, 4));
            return *ref == -1 && PyErr_Occurred() ? -1 : 0;
        }
        PyErr_SetString(PyExc_TypeError, "recorder.live holds rows and RequestWatches");
        return -1;
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    PyObject *known = PyDict_GetItemWithError(late, request_id); /* borrowed */
    if (known != NULL) {
        *ref = PyLong_AsLongLong(known);
        return *ref == -1 && PyErr_Occurred() ? -1 : 0;
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    PyObject *next = PyLong_FromSsize_t(-PyDict_GET_SIZE(late) - 1);
    if (next == NULL) {
        return -1;
    }
    int failed = PyDict_SetItem(late, request_id, next);
    *ref = PyLong_AsLongLong(next);
    Py_DECREF(next);
    return failed;
}

/* ---- Ready stamps: when a request's handle became runnable ----------------------------------- */

/* A table keyed by the handle's address (open addressing, linear probing), which holds a
 * reference to each stamped handle so that its address cannot be reused while stamped. It does
 * what loop.py's `recorder.stamps` dict does without an int key and a tuple per stamp. Past
 * `limit` entries (handles stamped and never run: cancelled ones) it is emptied wholesale. */
typedef struct {
    PyObject *handle; /* NULL: an empty slot */
    long long ready;
} Stamp;

typedef struct {
    Stamp *slots;
    size_t mask; /* the capacity, a power of two, less one */
    Py_ssize_t count;
    Py_ssize_t limit;
} Stamps;

#define STAMPS_FIRST_CAPACITY 64

static inline size_t
stamp_home(Stamps *stamps, PyObject *handle)
{
    unsigned long long key = (unsigned long long)(uintptr_t)handle >> 4;
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 32) & stamps->mask;
}

static int
stamps_init(Stamps *stamps, Py_ssize_t limit)
{
    stamps->slots = PyMem_Calloc(STAMPS_FIRST_CAPACITY, sizeof(Stamp));
    if (stamps->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    stamps->mask = STAMPS_FIRST_CAPACITY - 1;
    stamps->count = 0;
    stamps->limit = limit;
    return 0;
}

/* Forget every stamp; the handles are released once the table is consistent again, as
 * releasing one may run code that stamps another. */
static void
stamps_clear(Stamps *stamps)
{
    Stamp *old = stamps->slots;
    size_t capacity = stamps->mask + 1;
    if (old == NULL) {
        return;
    }
    stamps->slots = PyMem_Calloc(capacity, sizeof(Stamp));
    if (stamps->slots == NULL) { /* no memory for a fresh table: empty this one in place */
        stamps->slots = old;
        stamps->count = 0;
        for (size_t i = 0; i < capacity; i++) {
            Py_CLEAR(old[i].handle);
        }
        return;
    }
    stamps->count = 0;
    for (size_t i = 0; i < capacity; i++) {
        Py_XDECREF(old[i].handle);
    }
    PyMem_Free(old);
}

static void
stamps_free(Stamps *stamps)
{
    stamps_clear(stamps);
    PyMem_Free(stamps->slots);
    stamps->slots = NULL;
}

static int
stamps_grow(Stamps *stamps)
{
    size_t capacity = (stamps->mask + 1) * 2;
    Stamp *grown = PyMem_Calloc(capacity, sizeof(Stamp));
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Stamp *old = stamps->slots;
    size_t old_capacity = stamps->mask + 1;
    stamps->slots = grown;
    stamps->mask = capacity - 1;
    for (size_t i = 0; i < old_capacity; i++) {
        if (old[i].handle != NULL) {
            size_t j = stamp_home(stamps, old[i].handle);
            while (grown[j].handle != NULL) {
                j = (j + 1) & stamps->mask;
            }
            grown[j] = old[i];
        }
    }
    PyMem_Free(old);
    return 0;
}

/* Stamp `handle` as runnable since `ready`: 0, or -1 with an exception. */
static int
stamps_put(Stamps *stamps, PyObject *handle, long long ready)
{
    if (stamps->slots == NULL) {
        return 0;
    }
    if (stamps->count >= stamps->limit) {
        stamps_clear(stamps);
    }
    if ((size_t)(stamps->count + 1) * 4 > (stamps->mask + 1) * 3 && stamps_grow(stamps) < 0) {
        return -1;
    }
    size_t i = stamp_home(stamps, handle);
    while (stamps->slots[i].handle != NULL && stamps->slots[i].handle != handle) {
        i = (i + 1) & stamps->mask;
    }
    if (stamps->slots[i].handle == NULL) {
        stamps->slots[i].handle = Py_NewRef(handle);
        stamps->count++;
    }
    stamps->slots[i].ready = ready;
    return 0;
}

/* The stamp of `handle`, removed; 0 when it has none. */
static long long
stamps_pop(Stamps *stamps, PyObject *handle)
{
    if (stamps->slots == NULL || stamps->count == 0) {
        return 0;
    }
    size_t mask = stamps->mask;
    size_t i = stamp_home(stamps, handle);
    while (stamps->slots[i].handle != handle) {
        if (stamps->slots[i].handle == NULL) {
            return 0;
        }
        i = (i + 1) & mask;
    }
    long long ready = stamps->slots[i].ready;
    /* Backward-shift deletion: move up every later entry of the run that may sit in the hole. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; stamps->slots[j].handle != NULL; j = (j + 1) & mask) {
        size_t home = stamp_home(stamps, stamps->slots[j].handle);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            stamps->slots[hole] = stamps->slots[j];
            hole = j;
        }
    }
    stamps->slots[hole].handle = NULL;
    stamps->count--;
    Py_DECREF(handle); /* the table's reference; the caller holds its own */
    return ready;
}

/* ---- StepHook: Handle._run ------------------------------------------------------------- */

/* Ready stamps a task step may hold back until it ends (more are put in task_ready at once). */
#define HELD_STAMPS 8

typedef struct {
    PyObject_HEAD
    PyObject *original;   /* the Handle._run it replaces */
    PyObject *report;     /* report(handle, exc): a callback's exception, as Handle._run does */
    PyObject *context_run; /* contextvars.Context.run */
    PyObject *recorder;   /* loopscope.probe.recorder.Recorder */
    PyObject *steps;      /* recorder.steps.data: the packed steps (a bytearray) */
    PyObject *live;       /* recorder.live and recorder.late: what a step's request id stores */
    PyObject *late;
    PyObject *last_id;    /* the request id of the last step recorded, and its number */
    long long last_ref;
    Stamps stamps;        /* ready stamps, put by the SoonHook */
    PyObject *var;        /* the REQUEST_ID context variable */
    PyObject *loop;       /* the loop whose steps are recorded; None: none yet */
    HandleLayout layout;  /* holds references to asyncio's two handle types */
    long long long_ns;    /* steps longer than this read the thread CPU clock at their end */
    long long current_step; /* start of the step now running, 0 between steps */
    long long foreign_step; /* start of the running step of a loop not (yet) watched */
    unsigned long step_thread; /* the thread that runs the step `current_step` times */
    int inline_run;       /* whether to do the original's work (it is asyncio's own) */
    Py_ssize_t room; /* events taken from the budget and not used yet; below 0: steps to drop */
    PyObject *skipped; /* what the steps dropped (room below 0) count as: `dropped` (the budget
                        * is spent) or `unrecorded` (asking the budget failed) */
    PyObject *task_ready; /* uvloop: when each request's task became runnable, by request id */
    PyObject *current_request; /* the request of the task step now running (None between) */
    /* task_ready stamps noted while a task step runs, put in task_ready when it ends: most are
     * the timer a request sets as its response ends (uvicorn's keep-alive), which its finish
     * in that same step drops unused (forget_task_ready), with no dict entry made and removed. */
    PyObject *held_ids[HELD_STAMPS];
    long long held_at[HELD_STAMPS];
    int held;
    vectorcallfunc vectorcall;
} StepHook;

static PyTypeObject TimedCoroutineType;

/* When `handle` became runnable, 0 where unknown. Its stamp is taken even when it is `wanted`
 * no more (its request id was reset meanwhile), so that the table lets go of it. */
static long long
ready_of(StepHook *self, PyObject *handle, int wanted)
{
    long long ready = stamps_pop(&self->stamps, handle);
    if (!wanted) {
        return 0;
    }
    if (ready || !Py_IS_TYPE(handle, self->layout.timer_type)) {
        return ready;
    }
    /* A timer's `_when` is loop.time(), i.e. time.monotonic(): the same clock. */
    PyObject *when = PyObject_GetAttr(handle, str_when);
    if (when != NULL) {
        double seconds = PyFloat_AsDouble(when);
        ready = isfinite(seconds) ? (long long)(seconds * 1e9) : 0;
        Py_DECREF(when);
    }
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return ready;
}

static void record_ready_step(StepHook *self, long long start, long long end,
                              PyObject *request_id, long long ready, const char *hook);

static void
record_step(StepHook *self, PyObject *handle, long long start, long long end,
            PyObject *request_id)
{
    record_ready_step(self, start, end, request_id,
                      ready_of(self, handle, request_id != Py_None), "Handle._run");
}

/* Store one step that became runnable at `ready` (0: unknown); failures are counted as
 * `hook`'s. */
static void
record_ready_step(StepHook *self, long long start, long long end, PyObject *request_id,
                  long long ready, const char *hook)
{
    long long cpu_end = end - start > self->long_ns ? clock_ns(CLOCK_THREAD_CPUTIME_ID) : 0;
    if (self->room < 0) { /* drop a chunk of steps before asking again */
        self->room++;
        bump(self->recorder, self->skipped);
        return;
    }
    if (self->room == 0) {
        PyObject *granted = PyObject_CallMethodOneArg(self->recorder, str_take, chunk);
        self->room = granted != NULL ? PyLong_AsSsize_t(granted) : 0;
        Py_XDECREF(granted);
        /* A failure is no spent budget: its steps are `unrecorded`, not `dropped`. */
        self->skipped = str_dropped;
        if (PyErr_Occurred() || self->room < 0) {
            bump_after_clear(self->recorder, hook);
            self->room = 0;
            self->skipped = str_unrecorded;
        }
        if (self->room == 0) {
            self->room = 1 - BUDGET_CHUNK;
            bump(self->recorder, self->skipped);
            return;
        }
    }
    self->room--;
    long long ref = 0;
    if (request_id == self->last_id) { /* steps of one request often come in a row */
        ref = self->last_ref;
    }
    else if (request_id != Py_None) {
        if (ref_of(self->live, self->late, request_id, &ref) < 0) {
            goto failed;
        }
        Py_XSETREF(self->last_id, Py_NewRef(request_id));
        self->last_ref = ref;
    }
    long long step[5] = {start, end, cpu_end, ref, ready}; /* recorder.STEP */
    if (bytes_append(self->steps, step, sizeof(step)) == 0) {
        return;
    }
failed:
    bump_after_clear(self->recorder, hook);
}

/* handle._<slot>, borrowed, for an exact Handle or TimerHandle; NULL when it cannot be read so. */
static inline PyObject *
borrowed_slot(HandleLayout *layout, PyObject *handle, Py_ssize_t offset)
{
    return offset >= 0 ? *(PyObject **)((char *)handle + offset) : NULL;
}

/* Handle._run without its Python frame: `self._context.run(self._callback, *self._args)`; an
 * exception of the callback other than SystemExit and KeyboardInterrupt goes to `report`, which
 * has asyncio's own Handle._run report it. Calling the Python original from here would put a
 * fresh interpreter frame between the loop and each callback, which was most of what the step
 * hook cost (`make bench-instructions`). Handles of another type, or with slots of unexpected
 * types, go to the original. */
static PyObject *
run_handle(StepHook *self, PyObject *const *args, size_t nargsf)
{
    PyObject *handle = args[0];
    HandleLayout *layout = &self->layout;
    PyTypeObject *type = Py_TYPE(handle);
    PyObject *context = NULL, *callback = NULL, *callback_args = NULL;
    if (type == layout->handle_type || type == layout->timer_type) {
        context = borrowed_slot(layout, handle, layout->context_offset);
        callback = borrowed_slot(layout, handle, layout->callback_offset);
        callback_args = borrowed_slot(layout, handle, layout->args_offset);
    }
    if (context == NULL || callback == NULL || callback_args == NULL ||
        !PyContext_CheckExact(context) || !PyTuple_CheckExact(callback_args)) {
        return PyObject_Vectorcall(self->original, args, nargsf, NULL);
    }
    /* The callback may cancel or rebind its own handle: hold what is being called. */
    Py_INCREF(context);
    Py_INCREF(callback);
    Py_INCREF(callback_args);
    Py_ssize_t count = PyTuple_GET_SIZE(callback_args);
    PyObject *small[8];
    PyObject **stack =
        count + 2 <= 8 ? small : PyMem_Malloc((size_t)(count + 2) * sizeof(PyObject *));
    PyObject *result = NULL;
    if (stack == NULL) {
        PyErr_NoMemory();
    }
    else {
        stack[0] = context;
        stack[1] = callback;
        for (Py_ssize_t i = 0; i < count; i++) {
            stack[i + 2] = PyTuple_GET_ITEM(callback_args, i);
        }
        result = PyObject_Vectorcall(self->context_run, stack, (size_t)(count + 2), NULL);
        if (stack != small) {
            PyMem_Free(stack);
        }
    }
    Py_DECREF(context);
    Py_DECREF(callback);
    Py_DECREF(callback_args);
    if (result != NULL) {
        Py_DECREF(result);
        Py_RETURN_NONE;
    }
    if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
        PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
        return NULL;
    }
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    PyErr_NormalizeException(&exc_type, &exc_value, &exc_tb);
    if (exc_tb != NULL && exc_value != NULL) {
        PyException_SetTraceback(exc_value, exc_tb);
    }
    PyObject *reported = exc_value != NULL
                             ? PyObject_CallFunctionObjArgs(self->report, handle, exc_value, NULL)
                             : NULL;
    Py_XDECREF(exc_type);
    Py_XDECREF(exc_value);
    Py_XDECREF(exc_tb);
    if (reported == NULL) {
        return NULL; /* what the reporting raised, as from the original */
    }
    Py_DECREF(reported);
    Py_RETURN_NONE;
}

/* A step of a loop that is not watched: run as it is, but timed, because the probe may start
 * watching its loop in the middle of it (the first ASGI call of a new loop is made inside one
 * of its steps, and may block it): `adopt_running_step` then makes it the current step, and it
 * is recorded as the watched loop's first. Only the watched loop's steps cost more than this. */
static PyObject *
foreign_step(StepHook *self, PyObject *const *args, size_t nargsf)
{
    long long start = clock_ns(CLOCK_MONOTONIC);
    self->foreign_step = start;
    PyObject *result = self->inline_run ? run_handle(self, args, nargsf)
                                        : PyObject_Vectorcall(self->original, args, nargsf, NULL);
    long long end = clock_ns(CLOCK_MONOTONIC);
    self->foreign_step = 0;
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb); /* the original's, if it raised */
    PyObject *handle = args[0];
    PyObject *loop = handle_slot(&self->layout, handle, self->layout.loop_offset, str_loop);
    int adopted = loop != NULL && loop == self->loop;
    Py_XDECREF(loop);
    PyErr_Clear();
    if (adopted) {
        __atomic_store_n(&self->current_step, 0, __ATOMIC_RELAXED);
        /* The request id was set and reset inside the step: the request's first and last step
         * (read from `current_step`) attribute it. */
        record_step(self, handle, start, end, Py_None);
    }
    PyErr_Restore(exc_type, exc_value, exc_tb);
    return with_pending(result);
}

static PyObject *
step_hook_adopt(StepHook *self, PyObject *Py_UNUSED(ignored))
{
    self->step_thread = PyThread_get_thread_ident();
    __atomic_store_n(&self->current_step, self->foreign_step, __ATOMIC_RELAXED);
    Py_RETURN_NONE;
}

/* running_here(): whether a step of the watched loop runs now on the calling thread. The
 * middleware asks it instead of asyncio for the running loop (whose C accessor makes a getpid
 * system call on every call): a watched step's loop is the watched loop. */
static inline int
running_here(StepHook *self)
{
    return __atomic_load_n(&self->current_step, __ATOMIC_RELAXED) != 0 &&
           self->step_thread == PyThread_get_thread_ident();
}

static PyObject *
step_hook_running_here(StepHook *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(running_here(self));
}

static PyObject *
step_hook_call(StepHook *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL) {
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    }
    PyObject *handle = args[0];
    PyObject *loop = handle_slot(&self->layout, handle, self->layout.loop_offset, str_loop);
    if (loop == NULL) {
        PyErr_Clear();
        return PyObject_Vectorcall(self->original, args, nargsf, NULL);
    }
    int ours = loop == self->loop;
    Py_DECREF(loop);
    if (!ours) {
        return foreign_step(self, args, nargsf);
    }
    PyObject *request_id = request_of(&self->layout, handle, self->var);
    if (request_id == NULL) {
        bump_after_clear(self->recorder, "Handle._run");
        request_id = Py_NewRef(Py_None);
    }
    long long start = clock_ns(CLOCK_MONOTONIC);
    self->step_thread = PyThread_get_thread_ident();
    /* Atomic: the StallGate reads it from the watchdog thread without the GIL. */
    __atomic_store_n(&self->current_step, start, __ATOMIC_RELAXED);

    PyObject *result = self->inline_run ? run_handle(self, args, nargsf)
                                        : PyObject_Vectorcall(self->original, args, nargsf, NULL);

    long long end = clock_ns(CLOCK_MONOTONIC);
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb); /* the original's, if it raised */
    __atomic_store_n(&self->current_step, 0, __ATOMIC_RELAXED);
    record_step(self, handle, start, end, request_id);
    Py_DECREF(request_id);
    PyErr_Restore(exc_type, exc_value, exc_tb);
    return with_pending(result);
}

static void
layout_release(HandleLayout *layout)
{
    Py_CLEAR(layout->handle_type);
    Py_CLEAR(layout->timer_type);
}

/* Let go of the stamps held back by the running step. */
static void
drop_held(StepHook *self)
{
    int held = self->held;
    self->held = 0; /* first: releasing an id may run code that stamps again */
    for (int i = 0; i < held; i++) {
        Py_CLEAR(self->held_ids[i]);
    }
}

/* Whether two request ids are the same: by identity, as they mostly are (each is the object
 * REQUEST_ID holds), else by value. */
static inline int
same_id(PyObject *a, PyObject *b)
{
    return a == b || (PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b) &&
                      PyUnicode_GET_LENGTH(a) == PyUnicode_GET_LENGTH(b) &&
                      PyUnicode_Compare(a, b) == 0);
}

/* Where `request_id`'s stamp is among those held back by the running step; -1: none. */
static int
held_index(StepHook *steps, PyObject *request_id)
{
    for (int i = 0; i < steps->held; i++) {
        if (same_id(steps->held_ids[i], request_id)) {
            return i;
        }
    }
    return -1;
}

/* task_ready[request_id] = at, unless an earlier stamp stands (a call's since the request's
 * last step, or a timer's, which may lie ahead): 0, or -1 with an exception. */
static int
task_ready_put(StepHook *steps, PyObject *request_id, long long at)
{
    PyObject *stamp = PyDict_GetItemWithError(steps->task_ready, request_id);
    if (stamp == NULL && PyErr_Occurred()) {
        return -1;
    }
    if (stamp != NULL) {
        long long earlier = PyLong_AsLongLong(stamp);
        if (earlier == -1 && PyErr_Occurred()) {
            PyErr_Clear();
        }
        else if (earlier <= at) {
            return 0;
        }
    }
    else if (PyDict_GET_SIZE(steps->task_ready) > steps->stamps.limit) {
        PyDict_Clear(steps->task_ready);
    }
    PyObject *ready = PyLong_FromLongLong(at);
    int done = ready != NULL ? PyDict_SetItem(steps->task_ready, request_id, ready) : -1;
    Py_XDECREF(ready);
    return done;
}

/* The step is over: the stamps it held back go into task_ready (failures counted as `hook`'s). */
static void
release_held(StepHook *steps, const char *hook)
{
    int held = steps->held;
    steps->held = 0;
    for (int i = 0; i < held; i++) {
        PyObject *request_id = steps->held_ids[i];
        steps->held_ids[i] = NULL;
        if (task_ready_put(steps, request_id, steps->held_at[i]) < 0) {
            bump_after_clear(steps->recorder, hook);
        }
        Py_DECREF(request_id);
    }
}

static PyObject *
step_hook_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"original",   "report",  "recorder",    "var",    "handle_type",
                               "timer_type", "long_ns", "stamp_limit", "inline", NULL};
    PyObject *original, *report, *recorder, *var, *handle_type, *timer_type;
    long long long_ns;
    Py_ssize_t stamp_limit;
    int inline_run = 0;
    HandleLayout layout;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOLn|p", keywords, &original, &report,
                                     &recorder, &var, &handle_type, &timer_type, &long_ns,
                                     &stamp_limit, &inline_run) ||
        layout_init(&layout, handle_type, timer_type) < 0) {
        return NULL;
    }
    PyObject *context_run = PyObject_GetAttrString((PyObject *)&PyContext_Type, "run");
    if (context_run == NULL) {
        layout_release(&layout);
        return NULL;
    }
    PyObject *log = PyObject_GetAttrString(recorder, "steps");
    PyObject *steps = log != NULL ? typed_attr(log, "data", &PyByteArray_Type,
                                               "recorder.steps.data")
                                  : NULL;
    Py_XDECREF(log);
    PyObject *live = NULL, *late = NULL;
    StepHook *self = NULL;
    if (steps == NULL ||
        (live = typed_attr(recorder, "live", &PyDict_Type, "recorder.live")) == NULL ||
        (late = typed_attr(recorder, "late", &PyDict_Type, "recorder.late")) == NULL ||
        (self = (StepHook *)type->tp_alloc(type, 0)) == NULL ||
        stamps_init(&self->stamps, stamp_limit) < 0) {
        layout_release(&layout);
        Py_DECREF(context_run);
        Py_XDECREF(steps);
        Py_XDECREF(live);
        Py_XDECREF(late);
        Py_XDECREF(self);
        return NULL;
    }
    self->original = Py_NewRef(original);
    self->inline_run = inline_run;
    self->report = Py_NewRef(report);
    self->context_run = context_run;
    self->recorder = Py_NewRef(recorder);
    self->steps = steps;
    self->live = live;
    self->late = late;
    self->last_id = NULL;
    self->last_ref = 0;
    self->var = Py_NewRef(var);
    self->loop = Py_NewRef(Py_None);
    self->layout = layout;
    self->long_ns = long_ns;
    self->current_step = 0;
    self->foreign_step = 0;
    self->step_thread = 0;
    self->room = 0;
    self->skipped = str_dropped; /* interned for the module's life: not counted */
    self->current_request = Py_NewRef(Py_None);
    self->held = 0;
    self->task_ready = PyDict_New();
    if (self->task_ready == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->vectorcall = (vectorcallfunc)step_hook_call;
    return (PyObject *)self;
}

static int
step_hook_traverse(StepHook *self, visitproc visit, void *arg)
{
    Py_VISIT(self->original);
    Py_VISIT(self->report);
    Py_VISIT(self->context_run);
    Py_VISIT(self->recorder);
    Py_VISIT(self->steps);
    Py_VISIT(self->live);
    Py_VISIT(self->late);
    Py_VISIT(self->last_id);
    for (size_t i = 0; self->stamps.slots != NULL && i <= self->stamps.mask; i++) {
        Py_VISIT(self->stamps.slots[i].handle);
    }
    Py_VISIT(self->var);
    Py_VISIT(self->loop);
    Py_VISIT(self->layout.handle_type);
    Py_VISIT(self->layout.timer_type);
    Py_VISIT(self->task_ready);
    Py_VISIT(self->current_request);
    for (int i = 0; i < self->held; i++) {
        Py_VISIT(self->held_ids[i]);
    }
    return 0;
}

static int
step_hook_clear(StepHook *self)
{
    Py_CLEAR(self->original);
    Py_CLEAR(self->report);
    Py_CLEAR(self->context_run);
    Py_CLEAR(self->recorder);
    Py_CLEAR(self->steps);
    Py_CLEAR(self->live);
    Py_CLEAR(self->late);
    Py_CLEAR(self->last_id);
    stamps_clear(&self->stamps);
    Py_CLEAR(self->var);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->layout.handle_type);
    Py_CLEAR(self->layout.timer_type);
    Py_CLEAR(self->task_ready);
    Py_CLEAR(self->current_request);
    drop_held(self);
    return 0;
}

static void
step_hook_dealloc(StepHook *self)
{
    PyObject_GC_UnTrack(self);
    step_hook_clear(self);
    stamps_free(&self->stamps);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
step_hook_forget_stamps(StepHook *self, PyObject *Py_UNUSED(ignored))
{
    stamps_clear(&self->stamps);
    drop_held(self);
    if (self->task_ready != NULL) {
        PyDict_Clear(self->task_ready);
    }
    Py_RETURN_NONE;
}

typedef struct {
    PyObject_HEAD
    StepHook *hook;
    PyObject *coro;
} TimedCoroutine;

static PyObject *
step_hook_coroutine(StepHook *self, PyObject *coro)
{
    TimedCoroutine *timed = PyObject_GC_New(TimedCoroutine, &TimedCoroutineType);
    if (timed == NULL) {
        return NULL;
    }
    timed->hook = (StepHook *)Py_NewRef(self);
    timed->coro = Py_NewRef(coro);
    PyObject_GC_Track(timed);
    return (PyObject *)timed;
}

static PyMethodDef step_hook_methods[] = {
    {"forget_stamps", (PyCFunction)step_hook_forget_stamps, METH_NOARGS,
     "forget_stamps(): release every handle stamped as ready and not run yet."},
    {"coroutine", (PyCFunction)step_hook_coroutine, METH_O,
     "coroutine(coro): `coro` wrapped so that each step of the task that runs it is timed as "
     "a loop step (uvloop: a task factory wraps each task's coroutine)."},
    {"running_here", (PyCFunction)step_hook_running_here, METH_NOARGS,
     "running_here() -> bool: whether a step of the watched loop runs now on this thread."},
    {"adopt_running_step", (PyCFunction)step_hook_adopt, METH_NOARGS,
     "adopt_running_step(): the step now running (of a loop just chosen as `loop`) becomes "
     "the current step, to be recorded when it ends."},
    {NULL},
};

static PyMemberDef step_hook_members[] = {
    {"loop", T_OBJECT, offsetof(StepHook, loop), 0, "The loop whose steps are recorded."},
    {"current_step", T_LONGLONG, offsetof(StepHook, current_step), READONLY,
     "Start of the step now running (monotonic ns), 0 between steps."},
    {"foreign_step", T_LONGLONG, offsetof(StepHook, foreign_step), READONLY,
     "Start of the running step of a loop that is not watched, 0 between such steps."},
    {"__wrapped__", T_OBJECT, offsetof(StepHook, original), READONLY, "The original."},
    {"task_ready", T_OBJECT, offsetof(StepHook, task_ready), READONLY,
     "uvloop: when each request's task became runnable (monotonic ns), by request id."},
    {"current_request", T_OBJECT, offsetof(StepHook, current_request), READONLY,
     "The request of the task step now running, None between task steps."},
    {"stamp_limit", T_PYSSIZET, offsetof(StepHook, stamps.limit), READONLY,
     "Past this many ready stamps, they are dropped wholesale."},
    {NULL},
};

static PyTypeObject StepHookType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.probe._speedups.StepHook",
    .tp_doc = PyDoc_STR("StepHook(original, report, recorder, var, handle_type, timer_type, "
                        "long_ns, stamp_limit, inline=False): "
                        "times one loop step per call, in place of "
                        "asyncio.events.Handle._run."),
    .tp_basicsize = sizeof(StepHook),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = step_hook_new,
    .tp_dealloc = (destructor)step_hook_dealloc,
    .tp_traverse = (traverseproc)step_hook_traverse,
    .tp_clear = (inquiry)step_hook_clear,
    .tp_vectorcall_offset = offsetof(StepHook, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = hook_descr_get,
    .tp_members = step_hook_members,
    .tp_methods = step_hook_methods,
};

/* ---- SoonHook: BaseEventLoop._call_soon ------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *original; /* the BaseEventLoop._call_soon it replaces */
    StepHook *steps;    /* whose stamps it puts, and whose recorder, variable and layout it uses */
    PyObject *loop;
    PyObject *ready_for;    /* the loop whose `_ready.append` is `ready_append` */
    PyObject *ready_append;
    int inline_call;        /* whether to do the original's work (it is asyncio's own) */
    vectorcallfunc vectorcall;
} SoonHook;

static void
stamp_ready(SoonHook *self, PyObject *handle)
{
    StepHook *steps = self->steps;
    PyObject *request_id = request_of(&steps->layout, handle, steps->var);
    if (request_id == NULL) {
        goto failed;
    }
    int wanted = request_id != Py_None;
    Py_DECREF(request_id);
    if (!wanted || stamps_put(&steps->stamps, handle, clock_ns(CLOCK_MONOTONIC)) == 0) {
        return;
    }
failed:
    bump_after_clear(steps->recorder, "_call_soon");
}

/* BaseEventLoop._call_soon(loop, callback, args, context) without its Python frame (as
 * run_handle does for Handle._run): make the Handle and queue it. The original also deletes its
 * own frame from a debug-mode handle's source traceback; with no such frame here there is none
 * to delete, and the traceback ends where asyncio's does (it reaches one frame further out, as
 * it is cut at a fixed depth). NULL with the exception the original would have raised; NULL
 * without an exception when it cannot be done here (the original is called then). */
static PyObject *
call_soon_here(SoonHook *self, PyObject *const *args)
{
    HandleLayout *layout = &self->steps->layout;
    PyObject *loop = args[0];
    if (self->ready_for != loop) { /* loop._ready is made once, with the loop */
        PyObject *ready = PyObject_GetAttr(loop, str_ready);
        PyObject *append = ready != NULL ? PyObject_GetAttr(ready, str_append) : NULL;
        Py_XDECREF(ready);
        if (append == NULL) {
            PyErr_Clear();
            return NULL;
        }
        Py_XSETREF(self->ready_append, append);
        Py_XSETREF(self->ready_for, Py_NewRef(loop));
    }
    PyObject *made[4] = {args[1], args[2], loop, args[3]};
    PyObject *handle = PyObject_Vectorcall((PyObject *)layout->handle_type, made, 4, NULL);
    if (handle == NULL) {
        return NULL;
    }
    PyObject *done = PyObject_CallOneArg(self->ready_append, handle);
    if (done == NULL) {
        Py_DECREF(handle);
        return NULL;
    }
    Py_DECREF(done);
    return handle;
}

static PyObject *
soon_hook_call(SoonHook *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 4 || kwnames != NULL || args[0] != self->loop) {
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    }
    PyObject *handle = self->inline_call ? call_soon_here(self, args) : NULL;
    if (handle == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        handle = PyObject_Vectorcall(self->original, args, nargsf, NULL);
    }
    if (handle != NULL) {
        stamp_ready(self, handle);
    }
    return with_pending(handle);
}

static PyObject *
soon_hook_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"original", "steps", "inline", NULL};
    PyObject *original, *steps;
    int inline_call = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!|p", keywords, &original, &StepHookType,
                                     &steps, &inline_call)) {
        return NULL;
    }
    SoonHook *self = (SoonHook *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->original = Py_NewRef(original);
    self->steps = (StepHook *)Py_NewRef(steps);
    self->loop = Py_NewRef(Py_None);
    self->ready_for = NULL;
    self->ready_append = NULL;
    self->inline_call = inline_call;
    self->vectorcall = (vectorcallfunc)soon_hook_call;
    return (PyObject *)self;
}

static int
soon_hook_traverse(SoonHook *self, visitproc visit, void *arg)
{
    Py_VISIT(self->original);
    Py_VISIT(self->steps);
    Py_VISIT(self->loop);
    Py_VISIT(self->ready_for);
    Py_VISIT(self->ready_append);
    return 0;
}

static int
soon_hook_clear(SoonHook *self)
{
    Py_CLEAR(self->original);
    Py_CLEAR(self->steps);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->ready_for);
    Py_CLEAR(self->ready_append);
    return 0;
}

static void
soon_hook_dealloc(SoonHook *self)
{
    PyObject_GC_UnTrack(self);
    soon_hook_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef soon_hook_members[] = {
    {"loop", T_OBJECT, offsetof(SoonHook, loop), 0, "The loop whose handles are stamped."},
    {"__wrapped__", T_OBJECT, offsetof(SoonHook, original), READONLY, "The original."},
    {NULL},
};

static PyTypeObject SoonHookType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.probe._speedups.SoonHook",
    .tp_doc = PyDoc_STR("SoonHook(original, steps, inline=False): stamps when a request's "
                        "handle became "
                        "ready, for the StepHook `steps`, in place of "
                        "BaseEventLoop._call_soon."),
    .tp_basicsize = sizeof(SoonHook),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = soon_hook_new,
    .tp_dealloc = (destructor)soon_hook_dealloc,
    .tp_traverse = (traverseproc)soon_hook_traverse,
    .tp_clear = (inquiry)soon_hook_clear,
    .tp_vectorcall_offset = offsetof(SoonHook, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = hook_descr_get,
    .tp_members = soon_hook_members,
};

/* ---- TimedCoroutine: a task's coroutine, each step timed (uvloop) ------------------------ */

/* uvloop's handles are compiled, so its loop steps cannot be wrapped; a task's steps can: a
 * task factory wraps each new task's coroutine in a TimedCoroutine, whose `send` and `throw`
 * (one task step each, called by asyncio's C Task) are timed and recorded as loop steps, with
 * the ready time the TaskSoonHook noted for the request. Anything else is the coroutine's. */

/* Run one step (`send(value)`, or `throw(*args)` when `args` is not NULL) of the coroutine:
 * PYGEN_NEXT with what it yielded, PYGEN_RETURN with what it returned (a send only; no
 * StopIteration is made), or PYGEN_ERROR with the exception set (a throw's StopIteration too). */
static PySendResult
advance(TimedCoroutine *self, PyObject *value, PyObject *const *args, Py_ssize_t nargs,
        PyObject **result)
{
    if (args == NULL) {
        return PyIter_Send(self->coro, value, result);
    }
    PyObject *throw = PyObject_GetAttrString(self->coro, "throw");
    if (throw == NULL) {
        *result = NULL;
        return PYGEN_ERROR;
    }
    *result = PyObject_Vectorcall(throw, args, nargs, NULL);
    Py_DECREF(throw);
    return *result != NULL ? PYGEN_NEXT : PYGEN_ERROR;
}

static PySendResult
timed_step(TimedCoroutine *self, PyObject *value, PyObject *const *args, Py_ssize_t nargs,
           PyObject **result)
{
    StepHook *hook = self->hook;
    if (hook->loop == Py_None) {
        return advance(self, value, args, nargs, result);
    }
    PyObject *request_id = NULL;
    if (PyContextVar_Get(hook->var, Py_None, &request_id) < 0) {
        bump_after_clear(hook->recorder, "task step");
        request_id = Py_NewRef(Py_None);
    }
    /* The request's stamp, taken before the step: what the step does (a timer it sets, a
     * future it completes) belongs to its next wake-up. */
    long long ready = 0;
    if (request_id != Py_None && PyDict_GET_SIZE(hook->task_ready) > 0) {
        PyObject *stamp = PyDict_GetItemWithError(hook->task_ready, request_id);
        if (stamp != NULL) {
            ready = PyLong_AsLongLong(stamp);
            if (PyDict_DelItem(hook->task_ready, request_id) < 0 || PyErr_Occurred()) {
                bump_after_clear(hook->recorder, "task step");
                ready = 0;
            }
        }
        else if (PyErr_Occurred()) {
            bump_after_clear(hook->recorder, "task step");
        }
    }
    Py_XSETREF(hook->current_request, Py_NewRef(request_id));
    long long start = clock_ns(CLOCK_MONOTONIC);
    hook->step_thread = PyThread_get_thread_ident();
    __atomic_store_n(&hook->current_step, start, __ATOMIC_RELAXED);

    PySendResult sent = advance(self, value, args, nargs, result);

    long long end = clock_ns(CLOCK_MONOTONIC);
    PyObject *exc_type = NULL, *exc_value = NULL, *exc_tb = NULL;
    if (sent == PYGEN_ERROR) {
        PyErr_Fetch(&exc_type, &exc_value, &exc_tb); /* the coroutine's */
    }
    __atomic_store_n(&hook->current_step, 0, __ATOMIC_RELAXED);
    Py_XSETREF(hook->current_request, Py_NewRef(Py_None));
    record_ready_step(hook, start, end, request_id, ready, "task step");
    if (hook->held) {
        release_held(hook, "task step");
    }
    Py_DECREF(request_id);
    if (sent == PYGEN_ERROR) {
        PyErr_Restore(exc_type, exc_value, exc_tb);
    }
    if (pending_type != NULL) { /* the probe's own BaseException, kept by bump_after_clear */
        *result = with_pending(*result);
        return PYGEN_ERROR;
    }
    return sent;
}

/* asyncio's Task steps its coroutine with PyIter_Send: through this slot, a step that ends the
 * coroutine returns its value directly, with no StopIteration made and caught. */
static PySendResult
timed_am_send(TimedCoroutine *self, PyObject *value, PyObject **result)
{
    return timed_step(self, value, NULL, 0, result);
}

/* A step as a method returns it: a coroutine's return is StopIteration(value), as from
 * gen.send. */
static PyObject *
as_method_result(PySendResult sent, PyObject *result)
{
    if (sent != PYGEN_RETURN) {
        return result;
    }
    if (result == Py_None) {
        PyErr_SetNone(PyExc_StopIteration);
    }
    else {
        PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
        if (stop != NULL) {
            PyErr_SetObject(PyExc_StopIteration, stop);
            Py_DECREF(stop);
        }
    }
    Py_DECREF(result);
    return NULL;
}

static PyObject *
timed_send(TimedCoroutine *self, PyObject *value)
{
    PyObject *result = NULL;
    PySendResult sent = timed_step(self, value, NULL, 0, &result);
    return as_method_result(sent, result);
}

static PyObject *
timed_throw(TimedCoroutine *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *result = NULL;
    PySendResult sent = timed_step(self, NULL, args, nargs, &result);
    return as_method_result(sent, result);
}

static PyObject *
timed_next(TimedCoroutine *self)
{
    return timed_send(self, Py_None);
}

static PyObject *
timed_close(TimedCoroutine *self, PyObject *Py_UNUSED(ignored))
{
    return PyObject_CallMethod(self->coro, "close", NULL);
}

static PyObject *
timed_getattro(TimedCoroutine *self, PyObject *name)
{
    PyObject *found = PyObject_GenericGetAttr((PyObject *)self, name);
    if (found != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError)) {
        return found;
    }
    PyErr_Clear();
    return PyObject_GetAttr(self->coro, name); /* cr_frame, cr_running, __qualname__... */
}

static PyObject *
timed_repr(TimedCoroutine *self)
{
    return PyObject_Repr(self->coro);
}

static int
timed_traverse(TimedCoroutine *self, visitproc visit, void *arg)
{
    Py_VISIT(self->hook);
    Py_VISIT(self->coro);
    return 0;
}

static int
timed_clear(TimedCoroutine *self)
{
    Py_CLEAR(self->hook);
    Py_CLEAR(self->coro);
    return 0;
}

static void
timed_dealloc(TimedCoroutine *self)
{
    PyObject_GC_UnTrack(self);
    timed_clear(self);
    PyObject_GC_Del(self);
}

static PyMethodDef timed_methods[] = {
    {"send", (PyCFunction)timed_send, METH_O, "send(value): one task step, timed."},
    {"throw", (PyCFunction)(void (*)(void))timed_throw, METH_FASTCALL,
     "throw(...): one task step that raises in the coroutine, timed."},
    {"close", (PyCFunction)timed_close, METH_NOARGS, "close(): the coroutine's close()."},
    {NULL},
};

static PyAsyncMethods timed_async = {
    .am_await = PyObject_SelfIter,
    .am_send = (sendfunc)timed_am_send,
};

static PyTypeObject TimedCoroutineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.probe._speedups.TimedCoroutine",
    .tp_doc = PyDoc_STR("A task's coroutine whose every step is timed (StepHook.coroutine)."),
    .tp_basicsize = sizeof(TimedCoroutine),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)timed_dealloc,
    .tp_traverse = (traverseproc)timed_traverse,
    .tp_clear = (inquiry)timed_clear,
    .tp_getattro = (getattrofunc)timed_getattro,
    .tp_repr = (reprfunc)timed_repr,
    .tp_as_async = &timed_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)timed_next,
    .tp_methods = timed_methods,
};

/* ---- TaskSoonHook: uvloop's Loop.call_soon ---------------------------------------------- */

/* What a TaskSoonHook replaces: call_soon, or a timer's call_at (absolute) or call_later. */
#define WAKE_SOON 0
#define WAKE_AT 1
#define WAKE_LATER 2

typedef struct {
    PyObject_HEAD
    PyObject *original; /* the compiled loop's call_soon, call_at or call_later */
    StepHook *steps;    /* whose task_ready it fills */
    PyObject *loop;
    PyObject *bound;    /* the hook bound to `loop`, made once (task_soon_descr_get) */
    int timer;          /* WAKE_SOON, WAKE_AT or WAKE_LATER */
    vectorcallfunc vectorcall;
} TaskSoonHook;

static PyObject *str_context_kw;

/* Whether a keyword's name is `context`: by identity where it is interned (Python callers), else
 * by its characters (asyncio's C futures name it with a string of their own), inline. */
static inline int
is_context_kw(PyObject *name)
{
    return name == str_context_kw ||
           (PyUnicode_CheckExact(name) && PyUnicode_IS_COMPACT_ASCII(name) &&
            PyUnicode_GET_LENGTH(name) == 7 && memcmp(PyUnicode_DATA(name), "context", 7) == 0);
}

/* Note that the request whose context `call_soon` was given (or the caller's) became runnable
 * at `at`: the earliest such call since the request's last task step, none from within that
 * step. A timer notes when it is due (`at`, maybe ahead), also from within the step that set it:
 * the earliest moment the task may run again. */
static void
stamp_task_ready(TaskSoonHook *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                 long long at)
{
    StepHook *steps = self->steps;
    PyObject *context = NULL;
    if (kwnames != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            if (is_context_kw(PyTuple_GET_ITEM(kwnames, i))) {
                context = args[nargs + i];
            }
        }
    }
    PyObject *request_id = NULL;
    if (context != NULL && context != Py_None) {
        if (!PyContext_CheckExact(context)) {
            return;
        }
        /* Most contexts given here hold no request (the server's own callbacks): asked first,
         * so that no KeyError is made and dropped for each of them. */
        int holds = PySequence_Contains(context, steps->var);
        if (holds <= 0) {
            if (holds < 0) {
                goto failed;
            }
            return;
        }
        request_id = PyObject_GetItem(context, steps->var);
        if (request_id == NULL) {
            goto failed;
        }
    }
    else if (PyContextVar_Get(steps->var, Py_None, &request_id) < 0) {
        goto failed;
    }
    if (request_id == Py_None ||
        (self->timer == WAKE_SOON && __atomic_load_n(&steps->current_step, __ATOMIC_RELAXED) &&
         request_id == steps->current_request)) {
        Py_DECREF(request_id);
        return;
    }
    if (__atomic_load_n(&steps->current_step, __ATOMIC_RELAXED) && steps->held < HELD_STAMPS) {
        /* Held back until the step ends (see StepHook.held_ids); the earlier stamp stands. */
        int i = held_index(steps, request_id);
        if (i >= 0) {
            steps->held_at[i] = at < steps->held_at[i] ? at : steps->held_at[i];
            Py_DECREF(request_id);
        }
        else {
            i = steps->held++;
            steps->held_ids[i] = request_id; /* the reference is the table's */
            steps->held_at[i] = at;
        }
        return;
    }
    int done = task_ready_put(steps, request_id, at);
    Py_DECREF(request_id);
    if (done >= 0) {
        return;
    }
failed:
    bump_after_clear(steps->recorder, "call_soon");
}

static PyObject *
task_soon_call(TaskSoonHook *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *handle = PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (handle == NULL || nargs < 1 || args[0] != self->loop) {
        return handle;
    }
    long long at = clock_ns(CLOCK_MONOTONIC);
    if (self->timer != WAKE_SOON) {
        double when = nargs >= 2 ? PyFloat_AsDouble(args[1]) : -1.0;
        if (PyErr_Occurred() || !isfinite(when)) {
            PyErr_Clear();
            return handle;
        }
        /* A timer's `when` is loop.time(), i.e. time.monotonic(): the same clock. */
        at = self->timer == WAKE_AT ? (long long)(when * 1e9) : at + (long long)(when * 1e9);
    }
    stamp_task_ready(self, args, nargs, kwnames, at);
    return with_pending(handle);
}

/* asyncio's C futures and tasks get `loop.call_soon` as an attribute and call it, which binds the
 * hook anew for each call: for the loop it watches, the bound hook is made once and kept. */
static PyObject *
task_soon_descr_get(TaskSoonHook *self, PyObject *obj, PyObject *Py_UNUSED(type))
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    if (obj != self->loop) {
        return PyMethod_New((PyObject *)self, obj);
    }
    if (self->bound == NULL || PyMethod_GET_SELF(self->bound) != obj) {
        PyObject *bound = PyMethod_New((PyObject *)self, obj);
        if (bound == NULL) {
            return NULL;
        }
        Py_XSETREF(self->bound, bound);
    }
    return Py_NewRef(self->bound);
}

static PyObject *
task_soon_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"original", "steps", "timer", NULL};
    PyObject *original, *steps;
    int timer = WAKE_SOON;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!|i", keywords, &original, &StepHookType,
                                     &steps, &timer)) {
        return NULL;
    }
    if (timer < WAKE_SOON || timer > WAKE_LATER) {
        PyErr_SetString(PyExc_ValueError, "timer must be 0 (call_soon), 1 (call_at) or 2");
        return NULL;
    }
    TaskSoonHook *self = (TaskSoonHook *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->original = Py_NewRef(original);
    self->steps = (StepHook *)Py_NewRef(steps);
    self->loop = Py_NewRef(Py_None);
    self->bound = NULL;
    self->timer = timer;
    self->vectorcall = (vectorcallfunc)task_soon_call;
    return (PyObject *)self;
}

static int
task_soon_traverse(TaskSoonHook *self, visitproc visit, void *arg)
{
    Py_VISIT(self->original);
    Py_VISIT(self->steps);
    Py_VISIT(self->loop);
    Py_VISIT(self->bound);
    return 0;
}

static int
task_soon_clear(TaskSoonHook *self)
{
    Py_CLEAR(self->original);
    Py_CLEAR(self->steps);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->bound);
    return 0;
}

static void
task_soon_dealloc(TaskSoonHook *self)
{
    PyObject_GC_UnTrack(self);
    task_soon_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef task_soon_members[] = {
    {"loop", T_OBJECT, offsetof(TaskSoonHook, loop), 0, "The loop whose calls are stamped."},
    {"__wrapped__", T_OBJECT, offsetof(TaskSoonHook, original), READONLY, "The original."},
    {NULL},
};

static PyTypeObject TaskSoonHookType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.probe._speedups.TaskSoonHook",
    .tp_doc = PyDoc_STR("TaskSoonHook(original, steps, timer=0): in place of uvloop.Loop's "
                        "call_soon (timer 0), call_at (1) or call_later (2), notes when a "
                        "request's task became (or may become) runnable, in steps.task_ready."),
    .tp_basicsize = sizeof(TaskSoonHook),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = task_soon_new,
    .tp_dealloc = (destructor)task_soon_dealloc,
    .tp_traverse = (traverseproc)task_soon_traverse,
    .tp_clear = (inquiry)task_soon_clear,
    .tp_vectorcall_offset = offsetof(TaskSoonHook, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = (descrgetfunc)task_soon_descr_get,
    .tp_members = task_soon_members,
};

/* ---- TaskFactory: every new task's coroutine wrapped in a TimedCoroutine (uvloop) -------- */

typedef struct {
    PyObject_HEAD
    StepHook *steps;
    PyObject *task_type; /* asyncio.Task */
    PyObject *previous;  /* the loop's task factory before, or None */
    vectorcallfunc vectorcall;
} TaskFactory;

static PyObject *str_loop_kw;
static PyObject *loop_only; /* ("loop",): the keywords of the usual Task(coro, loop=loop) */
/* A task factory is given few keywords (name, context); this many fit on the stack. */
#define FACTORY_KEYWORDS 8
static PyTypeObject WatchedCallType;

/* factory(loop, coro, **kwargs): the loop's task factory. A native coroutine (or the middleware's
 * WatchedCall) is wrapped; a generator-based one or another awaitable passes as it is. */
static PyObject *
factory_call(TaskFactory *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "task factory takes (loop, coro)");
        return NULL;
    }
    PyObject *coro = args[1];
    /* The middleware's own call (a WatchedCall, given its own task by the pytest plugin) is
     * a coroutine to time as much as a native one (the Python twin's is native). */
    int timed = PyCoro_CheckExact(coro) || Py_IS_TYPE(coro, &WatchedCallType);
    PyObject *wrapped = timed ? step_hook_coroutine(self->steps, coro) : Py_NewRef(coro);
    if (wrapped == NULL) {
        return NULL;
    }
    PyObject *result = NULL;
    PyObject *few[2 + FACTORY_KEYWORDS]; /* on the stack: a task is made per request */
    PyObject **call = nkw <= FACTORY_KEYWORDS ? few
                                              : PyMem_Malloc((size_t)(2 + nkw) * sizeof(PyObject *));
    if (call == NULL) {
        Py_DECREF(wrapped);
        return PyErr_NoMemory();
    }
    if (self->previous != Py_None) { /* previous(loop, wrapped, **kwargs) */
        call[0] = args[0];
        call[1] = wrapped;
        for (Py_ssize_t i = 0; i < nkw; i++) {
            call[2 + i] = args[2 + i];
        }
        result = PyObject_Vectorcall(self->previous, call, 2, kwnames);
    }
    else { /* asyncio.Task(wrapped, loop=loop, **kwargs) */
        PyObject *names;
        if (nkw == 0) {
            names = Py_NewRef(loop_only); /* the usual call: no tuple made */
        }
        else {
            names = PyTuple_New(1 + nkw);
            if (names != NULL) {
                PyTuple_SET_ITEM(names, 0, Py_NewRef(str_loop_kw));
                for (Py_ssize_t i = 0; i < nkw; i++) {
                    PyTuple_SET_ITEM(names, 1 + i, Py_NewRef(PyTuple_GET_ITEM(kwnames, i)));
                }
            }
        }
        if (names != NULL) {
            call[0] = wrapped;
            call[1] = args[0];
            for (Py_ssize_t i = 0; i < nkw; i++) {
                call[2 + i] = args[2 + i];
            }
            result = PyObject_Vectorcall(self->task_type, call, 1, names);
            Py_DECREF(names);
        }
    }
    if (call != few) {
        PyMem_Free(call);
    }
    Py_DECREF(wrapped);
    return result;
}

static PyObject *
factory_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"steps", "task_type", "previous", NULL};
    PyObject *steps, *task_type, *previous = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O|O", keywords, &StepHookType, &steps,
                                     &task_type, &previous)) {
        return NULL;
    }
    TaskFactory *self = (TaskFactory *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->steps = (StepHook *)Py_NewRef(steps);
    self->task_type = Py_NewRef(task_type);
    self->previous = Py_NewRef(previous);
    self->vectorcall = (vectorcallfunc)factory_call;
    return (PyObject *)self;
}

static int
factory_traverse(TaskFactory *self, visitproc visit, void *arg)
{
    Py_VISIT(self->steps);
    Py_VISIT(self->task_type);
    Py_VISIT(self->previous);
    return 0;
}

static int
factory_clear(TaskFactory *self)
{
    Py_CLEAR(self->steps);
    Py_CLEAR(self->task_type);
    Py_CLEAR(self->previous);
    return 0;
}

static void
factory_dealloc(TaskFactory *self)
{
    PyObject_GC_UnTrack(self);
    factory_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef factory_members[] = {
    {"previous", T_OBJECT, offsetof(TaskFactory, previous), READONLY,
     "The loop's task factory before this one, or None."},
    {NULL},
};

static PyTypeObject TaskFactoryType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.probe._speedups.TaskFactory",
    .tp_doc = PyDoc_STR("TaskFactory(steps, task_type, previous=None): a loop's task factory "
                        "that wraps each new task's coroutine in steps.coroutine(coro)."),
    .tp_basicsize = sizeof(TaskFactory),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = factory_new,
    .tp_dealloc = (destructor)factory_dealloc,
    .tp_traverse = (traverseproc)factory_traverse,
    .tp_clear = (inquiry)factory_clear,
    .tp_vectorcall_offset = offsetof(TaskFactory, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_members = factory_members,
};

/* ---- RequestWatcher: the ASGI middleware's per-request bookkeeping ----------------------- */

#define MAX_REQUEST_ID 64 /* context.MAX_REQUEST_ID_LENGTH */

#define ROUTE_SLOTS 256 /* _speedups_python.ROUTE_SLOTS */

struct RequestWatcher {
    PyObject_HEAD
    PyObject *recorder;
    RecorderSlots slots;
    PyObject *live;    /* recorder.live: the requests still running */
    PyObject *named;   /* recorder.named: the clients' ids given out */
    PyObject *numbers; /* recorder.finished.numbers and .texts (bytearrays) */
    PyObject *texts;
    PyObject *var;     /* REQUEST_ID */
    PyObject *clock;   /* whose `current_step` is the running step's start (a StepHook or not) */
    PyObject *prefix;  /* recorder.id_prefix: of generated ids, ASCII */
    PyObject *header;  /* the request-id header's name, lower-case bytes (trace.REQUEST_HEADER) */
    PyObject *route_of; /* route_of(scope) -> the route template or None */
    /* Route templates built so far, by the route (or FastAPI route context) object: a small
     * direct-mapped table by address (routes compare by value and do not hash), each entry
     * holding its object, so an address is never mistaken for a freed route's. */
    PyObject *route_keys[ROUTE_SLOTS];
    PyObject *route_templates[ROUTE_SLOTS];
};


static PyObject *watch_call(RequestWatch *, PyObject *const *, size_t, PyObject *);

static long long
current_step_of(PyObject *clock)
{
    if (Py_IS_TYPE(clock, &StepHookType)) {
        return ((StepHook *)clock)->current_step;
    }
    PyObject *value = PyObject_GetAttr(clock, str_current_step);
    long long step = value != NULL ? PyLong_AsLongLong(value) : 0;
    Py_XDECREF(value);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return step;
}

/* mapping.get(key) as a new reference, Py_None when missing, NULL on another error. */
static PyObject *
get_or_none(PyObject *mapping, PyObject *key)
{
    if (PyDict_Check(mapping)) {
        PyObject *value = PyDict_GetItemWithError(mapping, key);
        if (value != NULL) {
            return Py_NewRef(value);
        }
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    PyObject *value = PyObject_GetItem(mapping, key);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_KeyError)) {
        PyErr_Clear();
        return Py_NewRef(Py_None);
    }
    return value;
}

/* Whether `text` is the string `wanted` (interned, ASCII): by identity, as where both are
 * interned, else by its characters, with no call into the unicode machinery. */
static inline int
is_text(PyObject *text, PyObject *wanted)
{
    if (text == wanted) {
        return 1;
    }
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_COMPACT_ASCII(text)) {
        return PyUnicode_Check(text) && PyUnicode_Compare(text, wanted) == 0;
    }
    Py_ssize_t length = PyUnicode_GET_LENGTH(wanted);
    return PyUnicode_GET_LENGTH(text) == length &&
           memcmp(PyUnicode_DATA(text), PyUnicode_DATA(wanted), (size_t)length) == 0;
}

/* The client's id from the request-id `header` (bytes), sanitized as `sanitize_request_id`
 * does ([A-Za-z0-9._-], at most 64), or NULL (no exception) when there is none. */
static PyObject *
id_from_headers(PyObject *headers, PyObject *header)
{
    const char *wanted = PyBytes_AS_STRING(header);
    Py_ssize_t wanted_size = PyBytes_GET_SIZE(header);
    if (!PyList_Check(headers) && !PyTuple_Check(headers)) {
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(headers);
    PyObject **items = PySequence_Fast_ITEMS(headers);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = items[i];
        if (!(PyTuple_Check(pair) || PyList_Check(pair)) || PySequence_Fast_GET_SIZE(pair) != 2) {
            continue;
        }
        PyObject *name = PySequence_Fast_GET_ITEM(pair, 0);
        if (!PyBytes_Check(name) || PyBytes_GET_SIZE(name) != wanted_size ||
            memcmp(PyBytes_AS_STRING(name), wanted, wanted_size) != 0) {
            continue;
        }
        Py_buffer view;
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(pair, 1), &view, PyBUF_SIMPLE) < 0) {
            PyErr_Clear();
            return NULL;
        }
        char kept[MAX_REQUEST_ID];
        Py_ssize_t length = 0;
        const unsigned char *raw = view.buf;
        for (Py_ssize_t j = 0; j < view.len && length < MAX_REQUEST_ID; j++) {
            unsigned char c = raw[j];
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-') {
                kept[length++] = (char)c;
            }
        }
        PyBuffer_Release(&view);
        return length ? PyUnicode_FromStringAndSize(kept, length) : NULL;
    }
    return NULL;
}

/* recorder.admit() without its dropped count: 1 taken, 0 spent, -1 error. */
static int
take_one(RequestWatcher *self)
{
    long long used, capacity;
    if (counter_get(self->recorder, self->slots.used, str_used, &used) < 0 ||
        counter_get(self->recorder, self->slots.capacity, str_capacity, &capacity) < 0) {
        return -1;
    }
    if (used >= capacity) {
        return 0;
    }
    return counter_set(self->recorder, self->slots.used, str_used, used + 1) < 0 ? -1 : 1;
}

/* `<prefix><serial>`, built without a format string. */
static PyObject *
generated_id(RequestWatcher *self, long long serial)
{
    char digits[24];
    int count = 0;
    unsigned long long rest = (unsigned long long)serial;
    do {
        digits[count++] = (char)('0' + rest % 10);
        rest /= 10;
    } while (rest && count < (int)sizeof(digits));
    Py_ssize_t prefix_length = PyUnicode_GET_LENGTH(self->prefix);
    PyObject *made = PyUnicode_New(prefix_length + count, 127);
    if (made == NULL) {
        return NULL;
    }
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(made);
    memcpy(out, PyUnicode_1BYTE_DATA(self->prefix), (size_t)prefix_length);
    for (int i = 0; i < count; i++) {
        out[prefix_length + i] = (Py_UCS1)digits[count - 1 - i];
    }
    return made;
}

/* recorder.id_taken, with Python called only for an id that looks generated. */
static int
id_taken(RequestWatcher *self, PyObject *request_id)
{
    int found = PyDict_Contains(self->named, request_id);
    if (found == 0) {
        found = PyDict_Contains(self->live, request_id);
    }
    if (found == 0) {
        found = (int)PyUnicode_Tailmatch(request_id, self->prefix, 0, PY_SSIZE_T_MAX, -1);
        if (found == 1) {
            PyObject *answer = PyObject_CallMethod(self->recorder, "id_taken", "O", request_id);
            found = answer != NULL ? PyObject_IsTrue(answer) : -1;
            Py_XDECREF(answer);
        }
    }
    return found;
}

/* The id of request number `serial`: the client's (made unique) or a generated one. New
 * reference, NULL with an exception. */
static PyObject *
request_id_for(RequestWatcher *self, PyObject *headers, long long serial)
{
    PyObject *request_id = id_from_headers(headers, self->header);
    int client = request_id != NULL;
    if (!client) {
        if (PyErr_Occurred() || (request_id = generated_id(self, serial)) == NULL) {
            return NULL;
        }
    }
    /* A client reusing an id must not overwrite the earlier request; a generated id can only
     * meet one a client sent. */
    int taken = client ? id_taken(self, request_id)
                       : (PyDict_GET_SIZE(self->named) ? PyDict_Contains(self->named, request_id)
                                                       : 0);
    if (taken == 1) {
        Py_SETREF(request_id, PyObject_CallMethod(self->recorder, "unique_id", "O", request_id));
    }
    else if (taken < 0) {
        Py_CLEAR(request_id);
    }
    if (request_id != NULL && client && PyDict_SetItem(self->named, request_id, Py_None) < 0) {
        Py_CLEAR(request_id);
    }
    return request_id;
}

static PyObject *
watcher_begin(RequestWatcher *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "begin(scope, send) takes two arguments");
        return NULL;
    }
    PyObject *scope = args[0], *send = args[1];
    long long start = clock_ns(CLOCK_MONOTONIC);
    /* One event per request, as Recorder.add_request takes: a small budget is shared fairly. */
    int room = take_one(self);
    if (room < 0) { /* a failure, not a spent budget: the request is unrecorded, not dropped */
        bump_after_clear(self->recorder, "middleware");
        bump(self->recorder, str_unrecorded);
        return with_pending(Py_NewRef(Py_None));
    }
    if (room == 0) {
        bump(self->recorder, str_dropped);
        return with_pending(Py_NewRef(Py_None)); /* spent: the request passes unrecorded */
    }
    RequestWatch *watch = NULL;
    PyObject *headers = NULL, *request_id = NULL;
    long long serial;
    PyObject *method = get_or_none(scope, str_method);
    PyObject *path = method != NULL ? get_or_none(scope, str_path) : NULL;
    if (path == NULL || (headers = get_or_none(scope, str_headers)) == NULL ||
        counter_get(self->recorder, self->slots.serial, str_serial, &serial) < 0 ||
        counter_set(self->recorder, self->slots.serial, str_serial, ++serial) < 0 ||
        (request_id = request_id_for(self, headers, serial)) == NULL) {
        goto failed;
    }
    watch = PyObject_GC_New(RequestWatch, &RequestWatchType);
    if (watch == NULL) {
        goto failed;
    }
    watch->watcher = (RequestWatcher *)Py_NewRef(self);
    watch->send = Py_NewRef(send);
    watch->request_id = Py_NewRef(request_id);
    watch->token = NULL;
    watch->method = Py_NewRef(method);
    watch->path = Py_NewRef(path);
    watch->status = NULL;
    watch->start = start;
    watch->first_step = current_step_of(self->clock);
    watch->end = 0;
    watch->serial = serial;
    watch->vectorcall = (vectorcallfunc)watch_call;
    PyObject_GC_Track(watch);
    if (PyDict_SetItem(self->live, request_id, (PyObject *)watch) < 0) {
        goto failed;
    }
    watch->token = PyContextVar_Set(self->var, request_id);
    if (watch->token == NULL) {
        /* A request that never runs must not show as running forever (its id stays taken). */
        PyErr_Clear();
        if (PyDict_DelItem(self->live, request_id) < 0) {
            PyErr_Clear();
        }
        goto failed;
    }
    Py_DECREF(method);
    Py_DECREF(path);
    Py_DECREF(headers);
    Py_DECREF(request_id);
    return (PyObject *)watch;
failed:
    bump_after_clear(self->recorder, "middleware");
    Py_XDECREF(watch);
    Py_XDECREF(method);
    Py_XDECREF(path);
    Py_XDECREF(headers);
    Py_XDECREF(request_id);
    return with_pending(Py_NewRef(Py_None));
}

static PyObject *
watcher_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"recorder", "var", "clock", "header", "route_of", NULL};
    PyObject *recorder, *var, *clock, *header, *route_of;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO!O", keywords, &recorder, &var, &clock,
                                     &PyBytes_Type, &header, &route_of)) {
        return NULL;
    }
    PyObject *finished = PyObject_GetAttrString(recorder, "finished");
    if (finished == NULL) {
        return NULL;
    }
    PyObject *numbers = NULL, *texts = NULL, *live = NULL, *named = NULL, *prefix = NULL;
    if ((numbers = typed_attr(finished, "numbers", &PyByteArray_Type,
                              "recorder.finished.numbers")) == NULL ||
        (texts = typed_attr(finished, "texts", &PyByteArray_Type, "recorder.finished.texts")) ==
            NULL ||
        (live = typed_attr(recorder, "live", &PyDict_Type, "recorder.live")) == NULL ||
        (named = typed_attr(recorder, "named", &PyDict_Type, "recorder.named")) == NULL ||
        (prefix = typed_attr(recorder, "id_prefix", &PyUnicode_Type, "recorder.id_prefix")) ==
            NULL ||
        !PyUnicode_IS_ASCII(prefix)) {
        if (prefix != NULL) {
            PyErr_SetString(PyExc_ValueError, "recorder.id_prefix must be ASCII");
        }
        Py_DECREF(finished);
        Py_XDECREF(numbers);
        Py_XDECREF(texts);
        Py_XDECREF(live);
        Py_XDECREF(named);
        Py_XDECREF(prefix);
        return NULL;
    }
    Py_DECREF(finished);
    RequestWatcher *self = (RequestWatcher *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(numbers);
        Py_DECREF(texts);
        Py_DECREF(live);
        Py_DECREF(named);
        Py_DECREF(prefix);
        return NULL;
    }
    self->recorder = Py_NewRef(recorder);
    recorder_slots_init(&self->slots, recorder);
    self->live = live;
    self->named = named;
    self->numbers = numbers;
    self->texts = texts;
    self->var = Py_NewRef(var);
    self->clock = Py_NewRef(clock);
    self->prefix = prefix;
    self->header = Py_NewRef(header);
    self->route_of = Py_NewRef(route_of);
    return (PyObject *)self;
}

static int
watcher_traverse(RequestWatcher *self, visitproc visit, void *arg)
{
    Py_VISIT(self->recorder);
    Py_VISIT(self->live);
    Py_VISIT(self->named);
    Py_VISIT(self->var);
    Py_VISIT(self->clock);
    Py_VISIT(self->route_of);
    for (int i = 0; i < ROUTE_SLOTS; i++) {
        Py_VISIT(self->route_keys[i]);
        Py_VISIT(self->route_templates[i]);
    }
    return 0;
}

static int
watcher_clear(RequestWatcher *self)
{
    Py_CLEAR(self->recorder);
    Py_CLEAR(self->live);
    Py_CLEAR(self->named);
    Py_CLEAR(self->numbers);
    Py_CLEAR(self->texts);
    Py_CLEAR(self->var);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->prefix);
    Py_CLEAR(self->header);
    Py_CLEAR(self->route_of);
    for (int i = 0; i < ROUTE_SLOTS; i++) {
        Py_CLEAR(self->route_keys[i]);
        Py_CLEAR(self->route_templates[i]);
    }
    return 0;
}

static void
watcher_dealloc(RequestWatcher *self)
{
    PyObject_GC_UnTrack(self);
    watcher_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef watcher_methods[] = {
    {"begin", (PyCFunction)(void (*)(void))watcher_begin, METH_FASTCALL,
     "begin(scope, send) -> RequestWatch | None: note an HTTP request's start, give it an id "
     "(set in REQUEST_ID) and return the `send` wrapper that sees its end; None when nothing "
     "is recorded (the budget is spent or the probe failed, counted in `errors`)."},
    {NULL},
};

static PyTypeObject RequestWatcherType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.probe._speedups.RequestWatcher",
    .tp_doc = PyDoc_STR("RequestWatcher(recorder, var, clock, header, route_of): the probe middleware's "
                        "per-request bookkeeping."),
    .tp_basicsize = sizeof(RequestWatcher),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = watcher_new,
    .tp_dealloc = (destructor)watcher_dealloc,
    .tp_traverse = (traverseproc)watcher_traverse,
    .tp_clear = (inquiry)watcher_clear,
    .tp_methods = watcher_methods,
};

/* RequestWatch(message): the app's `send`. Stamps the hand-over, notes the status, and returns
 * the server's own awaitable. */
static PyObject *
watch_call(RequestWatch *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    self->end = clock_ns(CLOCK_MONOTONIC);
    /* Only the response's start tells the status: the body's messages that follow are not
     * looked into. */
    if (self->status == NULL && PyVectorcall_NARGS(nargsf) == 1 && kwnames == NULL) {
        PyObject *kind = get_or_none(args[0], str_type);
        int start = kind != NULL && is_text(kind, str_response_start);
        Py_XDECREF(kind);
        if (start) {
            PyObject *status = get_or_none(args[0], str_status);
            if (status != NULL) {
                Py_XSETREF(self->status, status);
            }
        }
        if (PyErr_Occurred()) {
            bump_after_clear(self->watcher->recorder, "middleware");
        }
    }
    if (pending_type != NULL) { /* not sent, as the pure-Python `send` wrapper would not */
        return with_pending(NULL);
    }
    return PyObject_Vectorcall(self->send, args, nargsf, kwnames);
}

/* A response status as FinishedLog stores it: an exact int64, else NO_STATUS. */
static long long
status_of(PyObject *status)
{
    if (status == NULL || !PyLong_CheckExact(status)) {
        return NO_STATUS;
    }
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(status, &overflow);
    if (overflow || (value == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return NO_STATUS;
    }
    return value;
}

/* The route template of a finished request's `scope`, as `route_of(scope)` builds it, kept by
 * the route object (FastAPI's effective route context where there is one): building it is a
 * Python call, too dear for every request, and a route's template does not change. Built every
 * time where a mount added a prefix (`app_root_path` in the scope), which the route does not
 * tell. New reference, NULL with an exception. */
static PyObject *
route_template_of(RequestWatcher *self, PyObject *scope)
{
    if (!PyDict_CheckExact(scope)) {
        return PyObject_CallOneArg(self->route_of, scope);
    }
    PyObject *route = PyDict_GetItemWithError(scope, str_route); /* borrowed, as below */
    if (route == NULL || route == Py_None) { /* no route matched (a 404): route_of says None */
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    int mounted = PyDict_Contains(scope, str_app_root_path);
    if (mounted != 0) {
        return mounted < 0 ? NULL : PyObject_CallOneArg(self->route_of, scope);
    }
    PyObject *key = route;
    PyObject *fastapi = PyDict_GetItemWithError(scope, str_fastapi);
    if (fastapi != NULL && PyDict_Check(fastapi)) {
        PyObject *context = PyDict_GetItemWithError(fastapi, str_route_context);
        if (context != NULL && context != Py_None) {
            key = context;
        }
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    size_t slot = ((uintptr_t)key >> 4) % ROUTE_SLOTS;
    if (self->route_keys[slot] == key) {
        return Py_NewRef(self->route_templates[slot]);
    }
    PyObject *template = PyObject_CallOneArg(self->route_of, scope);
    if (template != NULL && PyUnicode_CheckExact(template)) {
        Py_XSETREF(self->route_keys[slot], Py_NewRef(key));
        Py_XSETREF(self->route_templates[slot], Py_NewRef(template));
    }
    return template;
}

/* A request is over: a ready stamp of its task that no later step took is stale. Timers set in
 * its last step leave one (uvicorn's keep-alive timer, set as the response ends): kept, they
 * would pile up to the stamp limit, one per request, in a table every wake-up looks into. */
static void
forget_task_ready(PyObject *clock, PyObject *request_id)
{
    if (!Py_IS_TYPE(clock, &StepHookType)) {
        return;
    }
    StepHook *steps = (StepHook *)clock;
    int i = held_index(steps, request_id); /* held by the step it finishes in */
    if (i >= 0) {
        PyObject *held = steps->held_ids[i];
        steps->held--;
        steps->held_ids[i] = steps->held_ids[steps->held];
        steps->held_at[i] = steps->held_at[steps->held];
        steps->held_ids[steps->held] = NULL;
        Py_DECREF(held);
    }
    PyObject *ready = steps->task_ready;
    if (PyDict_GET_SIZE(ready) == 0) {
        return;
    }
    int stamped = PyDict_Contains(ready, request_id); /* asked first: no KeyError made */
    if (stamped < 0 || (stamped && PyDict_DelItem(ready, request_id) < 0)) {
        PyErr_Clear();
    }
}

/* finish(scope): store the request's row and reset REQUEST_ID; call once, when the app is done. */
static PyObject *
watch_finish(RequestWatch *self, PyObject *scope)
{
    RequestWatcher *watcher = self->watcher;
    /* The full route template, as `loopscope.probe.routes.route_template` builds it (prefixes
     * of included routers and mounts), written once for both; built once per route. */
    PyObject *template = route_template_of(watcher, scope);
    if (template == NULL) {
        bump_after_clear(watcher->recorder, "middleware");
        template = Py_NewRef(Py_None);
    }
    long long end = self->end ? self->end : clock_ns(CLOCK_MONOTONIC);
    /* Stored once, while it is the running request with its id (a second call finds none). */
    PyObject *running = PyDict_GetItemWithError(watcher->live, self->request_id); /* borrowed */
    if (running == (PyObject *)self) {
        /* FinishedLog.append: the texts first, then the numbers that point at them. */
        long long numbers[7] = {self->start,
                                self->first_step,
                                end,
                                status_of(self->status),
                                current_step_of(watcher->clock),
                                self->serial,
                                PyByteArray_GET_SIZE(watcher->texts)};
        PyObject *texts[4] = {self->request_id, self->method, self->path, template};
        if (texts_append(watcher->texts, texts, 4) < 0 ||
            bytes_append(watcher->numbers, numbers, sizeof(numbers)) < 0) {
            bump_after_clear(watcher->recorder, "middleware");
        }
        if (PyDict_DelItem(watcher->live, self->request_id) < 0) {
            bump_after_clear(watcher->recorder, "middleware");
        }
    }
    PyErr_Clear();
    forget_task_ready(watcher->clock, self->request_id);
    Py_DECREF(template);
    if (self->token != NULL) {
        if (PyContextVar_Reset(watcher->var, self->token) < 0) {
            bump_after_clear(watcher->recorder, "middleware");
        }
        Py_CLEAR(self->token);
    }
    return with_pending(Py_NewRef(Py_None));
}

static int
watch_traverse(RequestWatch *self, visitproc visit, void *arg)
{
    Py_VISIT(self->watcher);
    Py_VISIT(self->send);
    Py_VISIT(self->token);
    Py_VISIT(self->method);
    Py_VISIT(self->path);
    Py_VISIT(self->status);
    return 0;
}

static int
watch_clear(RequestWatch *self)
{
    Py_CLEAR(self->watcher);
    Py_CLEAR(self->send);
    Py_CLEAR(self->request_id);
    Py_CLEAR(self->token);
    Py_CLEAR(self->method);
    Py_CLEAR(self->path);
    Py_CLEAR(self->status);
    return 0;
}

static void
watch_dealloc(RequestWatch *self)
{
    PyObject_GC_UnTrack(self);
    watch_clear(self);
    PyObject_GC_Del(self);
}

static PyMethodDef watch_methods[] = {
    {"finish", (PyCFunction)watch_finish, METH_O,
     "finish(scope): store the request's record and reset REQUEST_ID (call once)."},
    {NULL},
};

/* row: the recorder.LiveRow of the running request. */
static PyObject *
watch_row(RequestWatch *self, void *Py_UNUSED(closure))
{
    return Py_BuildValue("(OOLLL)", self->method ? self->method : Py_None,
                         self->path ? self->path : Py_None, self->start, self->first_step,
                         self->serial);
}

static PyGetSetDef watch_getset[] = {
    {"row", (getter)watch_row, NULL, "(method, path, start_ns, first_step_ns, serial)", NULL},
    {NULL},
};

static PyMemberDef watch_members[] = {
    {"request_id", T_OBJECT, offsetof(RequestWatch, request_id), READONLY, "The id given."},
    {"serial", T_LONGLONG, offsetof(RequestWatch, serial), READONLY, "The request's number."},
    {NULL},
};

static PyTypeObject RequestWatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.probe._speedups.RequestWatch",
    .tp_doc = PyDoc_STR("One request being watched; call it as the app's `send`."),
    .tp_basicsize = sizeof(RequestWatch),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_dealloc = (destructor)watch_dealloc,
    .tp_traverse = (traverseproc)watch_traverse,
    .tp_clear = (inquiry)watch_clear,
    .tp_vectorcall_offset = offsetof(RequestWatch, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_methods = watch_methods,
    .tp_members = watch_members,
    .tp_getset = watch_getset,
};

/* ---- WatchedApp: the ASGI middleware's call, without a Python coroutine frame ---------------- */

/* The middleware (`loopscope.probe.asgi`) is the outermost layer of every request: written in
 * Python, its coroutine frame, the calls it makes and its `try`/`finally` were the largest part
 * of what the probe added to a request under uvloop (`make bench-instructions`). WatchedApp
 * does the same as the Python twin's `WatchedApp.__call__`: called as the app, it returns a
 * WatchedCall, an awaitable that starts on its first step (as a coroutine would, so the loop
 * check and the request's start are taken where they were), then passes every step to the
 * app's awaitable and, once that has ended in any way, finishes the request. What is rare stays
 * in Python, on the host (`ProbeMiddleware`): a new loop, lifespan and websocket scopes, the
 * task map of heartbeat mode. */

typedef struct {
    PyObject_HEAD
    PyObject *app;
    RequestWatcher *watcher;
    PyObject *clock; /* a StepHook, or anything else (no watched steps) */
    PyObject *host;  /* check_loop() -> track tasks?, not_http(...), track(id), untrack(task) */
    int track;       /* what check_loop() said last */
    vectorcallfunc vectorcall;
} WatchedApp;

typedef struct {
    PyObject_HEAD
    WatchedApp *owner;
    PyObject *scope, *receive, *send; /* receive and send: until it starts */
    PyObject *inner;                  /* the awaited iterator, once started */
    RequestWatch *watch;              /* NULL: no request watched (passed through, or not http) */
    PyObject *task;                   /* of track(), NULL when none */
    int state;                        /* CALL_NEW, CALL_RUNNING, CALL_DONE */
    int executing;                    /* inside a step, send, throw or close of the app's */
} WatchedCall;

#define CALL_NEW 0
#define CALL_RUNNING 1
#define CALL_DONE 2

static PyTypeObject WatchedAppType;
static PyObject *str_check_loop, *str_not_http, *str_track, *str_untrack, *str_http;
static PyObject *str_throw, *str_close;

static int
steps_here(PyObject *clock)
{
    return Py_IS_TYPE(clock, &StepHookType) && running_here((StepHook *)clock);
}

static PyObject *
watched_app_call(WatchedApp *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 3 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "an ASGI app takes (scope, receive, send)");
        return NULL;
    }
    WatchedCall *call = PyObject_GC_New(WatchedCall, &WatchedCallType);
    if (call == NULL) {
        return NULL;
    }
    call->owner = (WatchedApp *)Py_NewRef(self);
    call->scope = Py_NewRef(args[0]);
    call->receive = Py_NewRef(args[1]);
    call->send = Py_NewRef(args[2]);
    call->inner = NULL;
    call->watch = NULL;
    call->task = NULL;
    call->state = CALL_NEW;
    call->executing = 0;
    PyObject_GC_Track(call);
    return (PyObject *)call;
}

/* What `await awaitable` iterates: a native coroutine itself, else its `__await__()`. */
static PyObject *
awaited_iterator(PyObject *awaitable)
{
    if (PyCoro_CheckExact(awaitable)) {
        return Py_NewRef(awaitable);
    }
    if (PyGen_CheckExact(awaitable)) { /* a generator-based coroutine (types.coroutine) */
        PyObject *code = PyObject_GetAttrString(awaitable, "gi_code");
        int flags = code != NULL && PyCode_Check(code) ? ((PyCodeObject *)code)->co_flags : 0;
        Py_XDECREF(code);
        PyErr_Clear();
        if (flags & CO_ITERABLE_COROUTINE) {
            return Py_NewRef(awaitable);
        }
    }
    PyAsyncMethods *am = Py_TYPE(awaitable)->tp_as_async;
    if (am == NULL || am->am_await == NULL) {
        PyErr_Format(PyExc_TypeError, "object %.100s can't be used in 'await' expression",
                     Py_TYPE(awaitable)->tp_name);
        return NULL;
    }
    PyObject *iterator = am->am_await(awaitable);
    if (iterator != NULL && !PyIter_Check(iterator)) {
        PyErr_Format(PyExc_TypeError, "__await__() returned non-iterator of type '%.100s'",
                     Py_TYPE(iterator)->tp_name);
        Py_CLEAR(iterator);
    }
    return iterator;
}

/* The request is over, whatever way the app's awaitable ended: store it and let go of the
 * task. The app's exception, if any, is kept across (`finally`); 0, or -1 with the probe's own
 * BaseException set in its place. */
static int
call_finish(WatchedCall *self)
{
    self->state = CALL_DONE;
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    Py_CLEAR(self->inner);
    RequestWatch *watch = self->watch;
    PyObject *task = self->task;
    self->watch = NULL;
    self->task = NULL;
    if (watch == NULL && task == NULL) {
        PyErr_Restore(exc_type, exc_value, exc_tb);
        return 0;
    }
    PyObject *done = watch != NULL ? watch_finish(watch, self->scope) : Py_NewRef(Py_None);
    if (done != NULL && task != NULL) {
        Py_DECREF(done);
        done = PyObject_CallMethodOneArg(self->owner->host, str_untrack, task);
    }
    Py_XDECREF((PyObject *)watch);
    Py_XDECREF(task);
    if (done == NULL) { /* the probe's own BaseException (its Exceptions are counted) */
        Py_XDECREF(exc_type);
        Py_XDECREF(exc_value);
        Py_XDECREF(exc_tb);
        return -1;
    }
    Py_DECREF(done);
    PyErr_Restore(exc_type, exc_value, exc_tb);
    return 0;
}

/* The probe's own failure in the middleware: an Exception is counted (0), anything else (a
 * KeyboardInterrupt in a host's method) is raised in its place (-1), as the twin would. */
static int
middleware_failed(WatchedApp *owner)
{
    bump_after_clear(owner->watcher->recorder, "middleware");
    if (pending_type == NULL) {
        return 0;
    }
    with_pending(NULL); /* sets the kept exception */
    return -1;
}

/* The first step: the loop check, the request's start, the app called. 0, or -1 with the
 * exception raised where the Python middleware would raise it. */
static int
call_start(WatchedCall *self)
{
    WatchedApp *owner = self->owner;
    PyObject *scope = self->scope, *receive = self->receive, *send = self->send;
    self->receive = self->send = NULL;
    self->state = CALL_RUNNING;
    PyObject *awaitable = NULL;
    if (!steps_here(owner->clock)) { /* the first call of a new loop, or no steps watched */
        PyObject *track = PyObject_CallMethodNoArgs(owner->host, str_check_loop);
        int tracks = track != NULL ? PyObject_IsTrue(track) : -1;
        Py_XDECREF(track);
        if (tracks >= 0) {
            owner->track = tracks;
        }
        else if (middleware_failed(owner) < 0) {
            goto done;
        }
    }
    PyObject *kind = get_or_none(scope, str_type);
    if (kind == NULL) {
        goto done;
    }
    int http = is_text(kind, str_http);
    Py_DECREF(kind);
    if (!http) {
        PyObject *call[4] = {owner->host, scope, receive, send};
        awaitable = PyObject_VectorcallMethod(str_not_http, call,
                                              4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        goto done;
    }
    PyObject *begin[2] = {scope, send};
    PyObject *watch = watcher_begin(owner->watcher, begin, 2); /* never raises for a request */
    if (watch == NULL) {
        goto done; /* the probe's own BaseException */
    }
    if (watch != Py_None) {
        self->watch = (RequestWatch *)watch;
        if (owner->track) {
            PyObject *task = PyObject_CallMethodOneArg(owner->host, str_track,
                                                       self->watch->request_id);
            if (task == NULL) {
                if (middleware_failed(owner) < 0) {
                    goto done; /* the request begun is finished by call_finish */
                }
            }
            else if (task == Py_None) {
                Py_DECREF(task);
            }
            else {
                self->task = task;
            }
        }
    }
    else {
        Py_DECREF(watch); /* the event budget is spent, or the probe failed: pass through */
    }
    PyObject *call[3] = {scope, receive, self->watch ? (PyObject *)self->watch : send};
    awaitable = PyObject_Vectorcall(owner->app, call, 3, NULL);
done:
    Py_DECREF(receive);
    Py_DECREF(send);
    if (awaitable != NULL) {
        self->inner = awaited_iterator(awaitable);
        Py_DECREF(awaitable);
    }
    if (self->inner == NULL) {
        call_finish(self);
        return -1;
    }
    return 0;
}

/* Raises what throw(*args) would raise into a coroutine not running (the exception given). */
static void
raise_thrown(PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *exc = args[0];
    if (PyExceptionInstance_Check(exc)) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    }
    else if (PyExceptionClass_Check(exc)) {
        PyErr_SetObject(exc, nargs > 1 ? args[1] : Py_None);
    }
    else {
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
    }
}

/* One step: send(value), or throw(*args) when `args` is not NULL. */
static PySendResult
call_step(WatchedCall *self, PyObject *value, PyObject *const *args, Py_ssize_t nargs,
          PyObject **result)
{
    *result = NULL;
    if (self->executing) { /* the app sends to, or throws into, its own call */
        PyErr_SetString(PyExc_ValueError, "coroutine already executing");
        return PYGEN_ERROR;
    }
    if (self->state == CALL_NEW && args == NULL) {
        if (value != Py_None) { /* as a coroutine: refused, and still to be started */
            PyErr_SetString(PyExc_TypeError,
                            "can't send non-None value to a just-started coroutine");
            return PYGEN_ERROR;
        }
        self->executing = 1;
        int started = call_start(self);
        self->executing = 0;
        if (started < 0) {
            return PYGEN_ERROR;
        }
    }
    if (self->state != CALL_RUNNING) { /* thrown into before it started, or after it ended */
        int done = self->state == CALL_DONE;
        self->state = CALL_DONE;
        if (args == NULL || done) {
            PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
        }
        else {
            raise_thrown(args, nargs);
        }
        return PYGEN_ERROR;
    }
    PyObject *inner = Py_NewRef(self->inner); /* held while it runs: finishing clears the slot */
    self->executing = 1;
    PySendResult sent;
    if (args == NULL) {
        sent = PyIter_Send(inner, value, result);
    }
    else {
        PyObject *throw = PyObject_GetAttr(inner, str_throw);
        if (throw != NULL) {
            *result = PyObject_Vectorcall(throw, args, nargs, NULL);
            Py_DECREF(throw);
        }
        else if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
            /* An iterator without throw: raised here, as `await` raises it in its frame. */
            PyErr_Clear();
            raise_thrown(args, nargs);
        }
        sent = *result != NULL ? PYGEN_NEXT : PYGEN_ERROR;
    }
    self->executing = 0;
    Py_DECREF(inner);
    if (sent != PYGEN_NEXT && call_finish(self) < 0) {
        Py_CLEAR(*result);
        return PYGEN_ERROR;
    }
    return sent;
}

static PySendResult
call_am_send(WatchedCall *self, PyObject *value, PyObject **result)
{
    return call_step(self, value, NULL, 0, result);
}

static PyObject *
call_send(WatchedCall *self, PyObject *value)
{
    PyObject *result = NULL;
    PySendResult sent = call_step(self, value, NULL, 0, &result);
    return as_method_result(sent, result);
}

static PyObject *
call_next(WatchedCall *self)
{
    return call_send(self, Py_None);
}

static PyObject *
call_throw(WatchedCall *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw expected 1 to 3 arguments");
        return NULL;
    }
    PyObject *result = NULL;
    PySendResult sent = call_step(self, NULL, args, nargs, &result);
    return as_method_result(sent, result);
}

static PyObject *
call_close(WatchedCall *self, PyObject *Py_UNUSED(ignored))
{
    if (self->executing) {
        PyErr_SetString(PyExc_ValueError, "coroutine already executing");
        return NULL;
    }
    if (self->state != CALL_RUNNING) {
        self->state = CALL_DONE;
        Py_RETURN_NONE;
    }
    PyObject *inner = Py_NewRef(self->inner);
    PyObject *result = NULL;
    PyObject *close = PyObject_GetAttr(inner, str_close);
    self->executing = 1;
    if (close != NULL) {
        result = PyObject_CallNoArgs(close);
        Py_DECREF(close);
    }
    else if (PyErr_ExceptionMatches(PyExc_AttributeError)) { /* nothing to close */
        PyErr_Clear();
        result = Py_NewRef(Py_None);
    }
    self->executing = 0;
    Py_DECREF(inner);
    if (call_finish(self) < 0) {
        Py_CLEAR(result);
    }
    return result;
}

/* A call dropped while it runs (its task destroyed): the app's awaitable is closed and the
 * request finished, as a coroutine's `finally` runs when it is collected. */
static void
call_finalize(WatchedCall *self)
{
    if (self->state != CALL_RUNNING) {
        return;
    }
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    PyObject *result = call_close(self, NULL);
    if (result == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
    }
    Py_XDECREF(result);
    PyErr_Restore(exc_type, exc_value, exc_tb);
}

static int
call_traverse(WatchedCall *self, visitproc visit, void *arg)
{
    Py_VISIT(self->owner);
    Py_VISIT(self->scope);
    Py_VISIT(self->receive);
    Py_VISIT(self->send);
    Py_VISIT(self->inner);
    Py_VISIT(self->watch);
    Py_VISIT(self->task);
    return 0;
}

static int
call_clear(WatchedCall *self)
{
    Py_CLEAR(self->owner);
    Py_CLEAR(self->scope);
    Py_CLEAR(self->receive);
    Py_CLEAR(self->send);
    Py_CLEAR(self->inner);
    Py_CLEAR(self->watch);
    Py_CLEAR(self->task);
    return 0;
}

static void
call_dealloc(WatchedCall *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) {
        return; /* resurrected */
    }
    PyObject_GC_UnTrack(self);
    call_clear(self);
    PyObject_GC_Del(self);
}

static PyMethodDef call_methods[] = {
    {"send", (PyCFunction)call_send, METH_O, "send(value): one step of the app's call."},
    {"throw", (PyCFunction)(void (*)(void))call_throw, METH_FASTCALL,
     "throw(...): raise in the app's call."},
    {"close", (PyCFunction)call_close, METH_NOARGS, "close(): close the app's call."},
    {NULL},
};

static PyObject *
call_await_of(WatchedCall *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->inner != NULL ? self->inner : Py_None);
}

static PyObject *
call_running(WatchedCall *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->executing);
}

static PyObject *
call_name(WatchedCall *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString("ProbeMiddleware.__call__");
}

static PyGetSetDef call_getset[] = {
    {"cr_await", (getter)call_await_of, NULL, "What the call awaits: the app's, once started.",
     NULL},
    {"cr_running", (getter)call_running, NULL, "Whether a step of it runs now.", NULL},
    {"__name__", (getter)call_name, NULL, "For reprs (a task's).", NULL},
    {"__qualname__", (getter)call_name, NULL, "For reprs (a task's).", NULL},
    {NULL},
};

static PyAsyncMethods call_async = {
    .am_await = PyObject_SelfIter,
    .am_send = (sendfunc)call_am_send,
};

static PyTypeObject WatchedCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.probe._speedups.WatchedCall",
    .tp_doc = PyDoc_STR("One call of a WatchedApp: await it, as the app's coroutine."),
    .tp_basicsize = sizeof(WatchedCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)call_dealloc,
    .tp_finalize = (destructor)call_finalize,
    .tp_traverse = (traverseproc)call_traverse,
    .tp_clear = (inquiry)call_clear,
    .tp_as_async = &call_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)call_next,
    .tp_methods = call_methods,
    .tp_getset = call_getset,
};

static PyObject *
watched_app_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"app", "watcher", "clock", "host", NULL};
    PyObject *app, *watcher, *clock, *host;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!OO", keywords, &app, &RequestWatcherType,
                                     &watcher, &clock, &host)) {
        return NULL;
    }
    WatchedApp *self = (WatchedApp *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->app = Py_NewRef(app);
    self->watcher = (RequestWatcher *)Py_NewRef(watcher);
    self->clock = Py_NewRef(clock);
    self->host = Py_NewRef(host);
    self->track = 0;
    self->vectorcall = (vectorcallfunc)watched_app_call;
    return (PyObject *)self;
}

static int
watched_app_traverse(WatchedApp *self, visitproc visit, void *arg)
{
    Py_VISIT(self->app);
    Py_VISIT(self->watcher);
    Py_VISIT(self->clock);
    Py_VISIT(self->host);
    return 0;
}

static int
watched_app_clear(WatchedApp *self)
{
    Py_CLEAR(self->app);
    Py_CLEAR(self->watcher);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->host);
    return 0;
}

static void
watched_app_dealloc(WatchedApp *self)
{
    PyObject_GC_UnTrack(self);
    watched_app_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef watched_app_members[] = {
    {"app", T_OBJECT, offsetof(WatchedApp, app), READONLY, "The app it wraps."},
    {"host", T_OBJECT, offsetof(WatchedApp, host), READONLY, "The middleware's slow paths."},
    {NULL},
};

/* Servers and test clients (uvicorn, hypercorn, Starlette's TestClient, asgiref) tell an ASGI 3
 * app by `iscoroutinefunction(app.__call__)`, and would take a C type's slot wrapper for ASGI 2:
 * `app.__call__` is `loopscope.probe.call_through` bound to the app, a real `async def` (as
 * `inspect` wants on 3.11). Servers call the app, which stays C. */
static PyObject *call_through;

static PyObject *
watched_app_call_through(PyObject *self, void *Py_UNUSED(closure))
{
    return PyMethod_New(call_through, self);
}

static PyGetSetDef watched_app_call_through_def = {
    "__call__", (getter)watched_app_call_through, NULL,
    "loopscope.probe.call_through bound to the app: a coroutine function to servers.", NULL};

/* Puts `__call__` (above) in the ready type's dict, in place of the slot wrapper. */
static int
show_call_through(PyTypeObject *type)
{
    PyObject *module = PyImport_ImportModule("loopscope.probe.call_through");
    call_through = module != NULL ? PyObject_GetAttrString(module, "call_through") : NULL;
    Py_XDECREF(module);
    if (call_through == NULL) {
        return -1;
    }
    PyObject *call = PyDescr_NewGetSet(type, &watched_app_call_through_def);
    int set = call != NULL ? PyDict_SetItemString(type->tp_dict, "__call__", call) : -1;
    Py_XDECREF(call);
    if (set < 0) {
        return -1;
    }
    PyType_Modified(type);
    return 0;
}

static PyTypeObject WatchedAppType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.probe._speedups.WatchedApp",
    .tp_doc = PyDoc_STR("WatchedApp(app, watcher, clock, host): `app` as the probe's ASGI "
                        "middleware (loopscope.probe.asgi), each HTTP request watched by "
                        "`watcher`."),
    .tp_basicsize = sizeof(WatchedApp),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = watched_app_new,
    .tp_dealloc = (destructor)watched_app_dealloc,
    .tp_traverse = (traverseproc)watched_app_traverse,
    .tp_clear = (inquiry)watched_app_clear,
    .tp_vectorcall_offset = offsetof(WatchedApp, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_members = watched_app_members,
};

/* ---- StallGate: the watchdog's wait in precise mode ----------------------------------------- */

#define TICKS_KEPT 64 /* watchdog._TICKS_KEPT */

typedef struct {
    PyObject_HEAD
    StepHook *hook;
    long long interval_ns;
    long long sample_after_ns;
    clockid_t cpu_clock; /* the loop thread's CPU clock */
    int has_cpu_clock;
    int stopped;
    int initialized; /* lock and wake */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    long long tick_ns[TICKS_KEPT]; /* the last ticks: (wall, loop thread CPU), a ring */
    long long tick_cpu[TICKS_KEPT];
    long long ticks; /* noted so far */
} StallGate;

/* wait() -> int | None: sleep tick after tick, GIL released, noting the loop thread's CPU clock
 * on each, until the step now running has run longer than `sample_after_ns`; return that tick's
 * time (monotonic ns), or None once stopped. */
static PyObject *
gate_wait(StallGate *self, PyObject *Py_UNUSED(ignored))
{
    long long found = 0;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->lock);
    while (!self->stopped) {
        long long deadline_ns = clock_ns(CLOCK_MONOTONIC) + self->interval_ns;
        struct timespec deadline = {(time_t)(deadline_ns / 1000000000LL),
                                    (long)(deadline_ns % 1000000000LL)};
        /* 0 is a wake-up (stop, or spurious); anything else ends the wait, so an error can
         * never make it spin. */
        while (!self->stopped &&
               pthread_cond_timedwait(&self->wake, &self->lock, &deadline) == 0) {
        }
        if (self->stopped) {
            break;
        }
        long long now = clock_ns(CLOCK_MONOTONIC);
        long long cpu = self->has_cpu_clock ? clock_ns(self->cpu_clock) : 0;
        if (cpu) { /* none once the loop thread is gone */
            int slot = (int)(self->ticks % TICKS_KEPT);
            self->tick_ns[slot] = now;
            self->tick_cpu[slot] = cpu;
            self->ticks++;
        }
        long long start = __atomic_load_n(&self->hook->current_step, __ATOMIC_RELAXED);
        if (start && now - start > self->sample_after_ns) {
            found = now;
            break;
        }
    }
    pthread_mutex_unlock(&self->lock);
    Py_END_ALLOW_THREADS
    if (!found) {
        Py_RETURN_NONE;
    }
    return PyLong_FromLongLong(found);
}

static PyObject *
gate_stop(StallGate *self, PyObject *Py_UNUSED(ignored))
{
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->lock);
    self->stopped = 1;
    pthread_cond_broadcast(&self->wake);
    pthread_mutex_unlock(&self->lock);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *
gate_ticks(StallGate *self, PyObject *Py_UNUSED(ignored))
{
    long long wall[TICKS_KEPT], cpu[TICKS_KEPT], count;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->lock);
    count = self->ticks < TICKS_KEPT ? self->ticks : TICKS_KEPT;
    for (long long i = 0; i < count; i++) {
        int slot = (int)((self->ticks - count + i) % TICKS_KEPT);
        wall[i] = self->tick_ns[slot];
        cpu[i] = self->tick_cpu[slot];
    }
    pthread_mutex_unlock(&self->lock);
    Py_END_ALLOW_THREADS
    PyObject *out = PyList_New((Py_ssize_t)count);
    for (long long i = 0; out != NULL && i < count; i++) {
        PyObject *tick = Py_BuildValue("(LL)", wall[i], cpu[i]);
        if (tick == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)i, tick);
    }
    return out;
}

static PyObject *
gate_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"hook", "interval_ns", "sample_after_ns", "cpu_clock_id", NULL};
    PyObject *hook, *cpu_clock_id;
    long long interval_ns, sample_after_ns;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!LLO", keywords, &StepHookType, &hook,
                                     &interval_ns, &sample_after_ns, &cpu_clock_id)) {
        return NULL;
    }
    /* Linux's per-thread clock ids are negative numbers: None says there is none. */
    long cpu_clock = cpu_clock_id == Py_None ? 0 : PyLong_AsLong(cpu_clock_id);
    if (cpu_clock == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (interval_ns <= 0 || interval_ns > 3600000000000LL || sample_after_ns < 0) {
        PyErr_SetString(PyExc_ValueError, "interval_ns must be positive and at most an hour, "
                                          "sample_after_ns not negative");
        return NULL;
    }
    StallGate *self = (StallGate *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    pthread_condattr_t attr;
    if (pthread_mutex_init(&self->lock, NULL) != 0 || pthread_condattr_init(&attr) != 0) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    /* Deadlines on the monotonic clock: a wall-clock jump must not stall the watchdog. */
    int failed = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
                 pthread_cond_init(&self->wake, &attr) != 0;
    pthread_condattr_destroy(&attr);
    if (failed) {
        pthread_mutex_destroy(&self->lock);
        Py_DECREF(self);
        PyErr_SetString(PyExc_OSError, "cannot make a monotonic condition variable");
        return NULL;
    }
    self->initialized = 1;
    self->hook = (StepHook *)Py_NewRef(hook);
    self->interval_ns = interval_ns;
    self->sample_after_ns = sample_after_ns;
    self->has_cpu_clock = cpu_clock_id != Py_None;
    self->cpu_clock = (clockid_t)cpu_clock;
    self->stopped = 0;
    self->ticks = 0;
    return (PyObject *)self;
}

static void
gate_dealloc(StallGate *self)
{
    if (self->initialized) {
        pthread_cond_destroy(&self->wake);
        pthread_mutex_destroy(&self->lock);
    }
    Py_XDECREF(self->hook);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef gate_methods[] = {
    {"wait", (PyCFunction)gate_wait, METH_NOARGS,
     "wait() -> int | None: block (GIL released) until the running loop step has run longer "
     "than sample_after_ns, checked every interval_ns; that check's time, or None once "
     "stopped."},
    {"stop", (PyCFunction)gate_stop, METH_NOARGS, "stop(): end every wait, now and later."},
    {"ticks", (PyCFunction)gate_ticks, METH_NOARGS,
     "ticks() -> list[(wall_ns, loop_cpu_ns)]: the last checks' times and the loop thread's "
     "CPU clock then, oldest first (none without a CPU clock)."},
    {NULL},
};

static PyTypeObject StallGateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.probe._speedups.StallGate",
    .tp_doc = PyDoc_STR("StallGate(hook, interval_ns, sample_after_ns, cpu_clock_id): the "
                        "precise-mode watchdog's wait, which checks the StepHook `hook` "
                        "without the GIL (cpu_clock_id: the loop thread's, or None)."),
    .tp_basicsize = sizeof(StallGate),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = gate_new,
    .tp_dealloc = (destructor)gate_dealloc,
    .tp_methods = gate_methods,
};

/* ---- module ----------------------------------------------------------------------------- */

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "loopscope.probe._speedups",
    .m_doc = "The probe's loop-step hooks in C; see loopscope.probe.loop.",
    .m_size = -1,
};

#define INTERN(var, text)                                                                    \
    if ((var = PyUnicode_InternFromString(text)) == NULL) {                                 \
        return NULL;                                                                          \
    }

PyMODINIT_FUNC
PyInit__speedups(void)
{
    INTERN(str_loop, "_loop");
    INTERN(str_context, "_context");
    INTERN(str_get, "get");
    INTERN(str_route, "route");
    INTERN(str_app_root_path, "app_root_path");
    INTERN(str_fastapi, "fastapi");
    INTERN(str_route_context, "effective_route_context");
    INTERN(str_take, "take");
    INTERN(str_current_step, "current_step");
    INTERN(str_method, "method");
    INTERN(str_path, "path");
    INTERN(str_headers, "headers");
    INTERN(str_type, "type");
    INTERN(str_status, "status");
    INTERN(str_response_start, "http.response.start");
    INTERN(str_used, "used");
    INTERN(str_capacity, "capacity");
    INTERN(str_when, "_when");
    INTERN(str_dropped, "dropped");
    INTERN(str_unrecorded, "unrecorded");
    INTERN(str_errors, "errors");
    INTERN(str_fail, "fail");
    INTERN(str_serial, "serial");
    INTERN(str_ready, "_ready");
    INTERN(str_append, "append");
    INTERN(str_context_kw, "context");
    INTERN(str_loop_kw, "loop");
    if ((loop_only = PyTuple_Pack(1, str_loop_kw)) == NULL) {
        return NULL;
    }
    INTERN(str_check_loop, "check_loop");
    INTERN(str_not_http, "not_http");
    INTERN(str_track, "track");
    INTERN(str_untrack, "untrack");
    INTERN(str_http, "http");
    INTERN(str_throw, "throw");
    INTERN(str_close, "close");
    if ((one = PyLong_FromLong(1)) == NULL ||
        (chunk = PyLong_FromLong(BUDGET_CHUNK)) == NULL) {
        return NULL;
    }
    if (PyType_Ready(&StepHookType) < 0 || PyType_Ready(&SoonHookType) < 0 ||
        PyType_Ready(&RequestWatcherType) < 0 || PyType_Ready(&RequestWatchType) < 0 ||
        PyType_Ready(&StallGateType) < 0 || PyType_Ready(&TimedCoroutineType) < 0 ||
        PyType_Ready(&TaskSoonHookType) < 0 || PyType_Ready(&TaskFactoryType) < 0 ||
        PyType_Ready(&WatchedAppType) < 0 || PyType_Ready(&WatchedCallType) < 0 ||
        show_call_through(&WatchedAppType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "StepHook", (PyObject *)&StepHookType) < 0 ||
        PyModule_AddObjectRef(module, "SoonHook", (PyObject *)&SoonHookType) < 0 ||
        PyModule_AddObjectRef(module, "RequestWatcher", (PyObject *)&RequestWatcherType) < 0 ||
        PyModule_AddObjectRef(module, "StallGate", (PyObject *)&StallGateType) < 0 ||
        PyModule_AddObjectRef(module, "TimedCoroutine", (PyObject *)&TimedCoroutineType) < 0 ||
        PyModule_AddObjectRef(module, "TaskSoonHook", (PyObject *)&TaskSoonHookType) < 0 ||
        PyModule_AddObjectRef(module, "TaskFactory", (PyObject *)&TaskFactoryType) < 0 ||
        PyModule_AddObjectRef(module, "WatchedApp", (PyObject *)&WatchedAppType) < 0 ||
        PyModule_AddIntConstant(module, "TICKS_KEPT", TICKS_KEPT) < 0 ||
        PyModule_AddIntConstant(module, "BUDGET_CHUNK", BUDGET_CHUNK) < 0 ||
        PyModule_AddIntConstant(module, "NO_TEXT", NO_TEXT) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
