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
 * exception from a wrapped original passes through untouched.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <time.h>

/* Steps take their events from the recorder's budget this many at a time (as loop.py does). */
#define BUDGET_CHUNK 256
/* Items per sealed chunk of a recorder `Log` (recorder.LOG_CHUNK). */
#define LOG_CHUNK 1024
/* A finished request's missing status (recorder.NO_STATUS). */
#define NO_STATUS LLONG_MIN
static PyObject *str_loop, *str_context, *str_get, *str_take, *str_when, *str_current_step;
static PyObject *str_method, *str_path, *str_headers, *str_route, *str_type, *str_status;
static PyObject *str_response_start, *str_used, *str_capacity;
static PyObject *str_dropped, *str_errors;
static PyObject *one, *chunk;

static inline long long
clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
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

/* A recorder `Log`'s two lists, resolved once. */
typedef struct {
    PyObject *tail;   /* list */
    PyObject *chunks; /* list of sealed tuples */
} LogLists;

static int
log_lists_init(LogLists *lists, PyObject *owner, const char *name)
{
    PyObject *log = PyObject_GetAttrString(owner, name);
    if (log == NULL) {
        return -1;
    }
    lists->tail = PyObject_GetAttrString(log, "tail");
    lists->chunks = lists->tail != NULL ? PyObject_GetAttrString(log, "chunks") : NULL;
    Py_DECREF(log);
    if (lists->chunks == NULL || !PyList_Check(lists->tail) || !PyList_Check(lists->chunks)) {
        Py_CLEAR(lists->tail);
        Py_CLEAR(lists->chunks);
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_TypeError, "%s.%s must be a Log", Py_TYPE(owner)->tp_name, name);
        }
        return -1;
    }
    return 0;
}

/* len(Log): every sealed chunk holds exactly LOG_CHUNK items. */
static inline Py_ssize_t
log_length(LogLists *lists)
{
    return PyList_GET_SIZE(lists->chunks) * LOG_CHUNK + PyList_GET_SIZE(lists->tail);
}

/* Log.append: add `item`, sealing the tail's first LOG_CHUNK items into a chunk when it is
 * full. -1 when the item could not be added; a failed seal is retried by the next append. */
static int
log_append(LogLists *lists, PyObject *item)
{
    if (PyList_Append(lists->tail, item) < 0) {
        return -1;
    }
    if (PyList_GET_SIZE(lists->tail) < LOG_CHUNK) {
        return 0;
    }
    PyObject *chunk = PyList_GetSlice(lists->tail, 0, LOG_CHUNK);
    if (chunk != NULL) {
        PyObject *sealed = PyList_AsTuple(chunk);
        Py_DECREF(chunk);
        if (sealed != NULL) {
            if (PyList_Append(lists->chunks, sealed) == 0 &&
                PyList_SetSlice(lists->tail, 0, LOG_CHUNK, NULL) < 0) {
                /* Both places hold the items now: undo the seal rather than keep them twice. */
                PyList_SetSlice(lists->chunks, PyList_GET_SIZE(lists->chunks) - 1,
                                PyList_GET_SIZE(lists->chunks), NULL);
            }
            Py_DECREF(sealed);
        }
    }
    PyErr_Clear();
    return 0;
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

/* recorder.request_ref: the number of `request_id` in `refs`, given on first sight; -1 with an
 * exception on failure. */
static long long
request_ref(PyObject *refs, PyObject *request_id)
{
    PyObject *ref = PyDict_GetItemWithError(refs, request_id); /* borrowed */
    if (ref != NULL) {
        return PyLong_AsLongLong(ref);
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    long long next = (long long)PyDict_GET_SIZE(refs) + 1;
    PyObject *value = PyLong_FromLongLong(next);
    if (value == NULL) {
        return -1;
    }
    int failed = PyDict_SetItem(refs, request_id, value) < 0;
    Py_DECREF(value);
    return failed ? -1 : next;
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
static void
bump_after_clear(PyObject *recorder)
{
    PyErr_Clear();
    bump(recorder, str_errors);
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

/* ---- StepHook: Handle._run ------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *original;   /* the Handle._run it replaces */
    PyObject *recorder;   /* loopscope.probe.recorder.Recorder */
    PyObject *steps;      /* recorder.steps.data: the packed steps (a bytearray) */
    PyObject *refs;       /* recorder.request_ids: each request id's number */
    PyObject *last_id;    /* the request id of the last step recorded, and its number */
    long long last_ref;
    PyObject *stamps;     /* recorder.stamps */
    PyObject *var;        /* the REQUEST_ID context variable */
    PyObject *loop;       /* the loop whose steps are recorded; None: none yet */
    HandleLayout layout;  /* holds references to asyncio's two handle types */
    long long long_ns;    /* steps longer than this read the thread CPU clock at their end */
    long long current_step; /* start of the step now running, 0 between steps */
    Py_ssize_t room;      /* events taken from the budget and not used yet */
    vectorcallfunc vectorcall;
} StepHook;

static long long
ready_of(StepHook *self, PyObject *handle)
{
    long long ready = 0;
    PyObject *key = PyLong_FromVoidPtr(handle); /* id(handle), as the stamps are keyed */
    if (key == NULL) {
        return 0;
    }
    PyObject *stamp = PyDict_GetItemWithError(self->stamps, key);
    if (stamp != NULL) {
        Py_INCREF(stamp);
        if (PyDict_DelItem(self->stamps, key) < 0) {
            PyErr_Clear();
        }
        if (PyTuple_Check(stamp) && PyTuple_GET_SIZE(stamp) > 0) {
            ready = PyLong_AsLongLong(PyTuple_GET_ITEM(stamp, 0));
        }
        Py_DECREF(stamp);
    }
    else if (!PyErr_Occurred() && Py_IS_TYPE(handle, self->layout.timer_type)) {
        /* A timer's `_when` is loop.time(), i.e. time.monotonic(): the same clock. */
        PyObject *when = PyObject_GetAttr(handle, str_when);
        if (when != NULL) {
            double seconds = PyFloat_AsDouble(when);
            ready = isfinite(seconds) ? (long long)(seconds * 1e9) : 0;
            Py_DECREF(when);
        }
    }
    Py_DECREF(key);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return ready;
}

static void
record_step(StepHook *self, PyObject *handle, long long start, long long end,
            PyObject *request_id)
{
    long long cpu_end = end - start > self->long_ns ? clock_ns(CLOCK_THREAD_CPUTIME_ID) : 0;
    long long ready = request_id != Py_None ? ready_of(self, handle) : 0;
    if (self->room <= 0) {
        PyObject *granted = PyObject_CallMethodOneArg(self->recorder, str_take, chunk);
        self->room = granted != NULL ? PyLong_AsSsize_t(granted) : 0;
        Py_XDECREF(granted);
        if (PyErr_Occurred() || self->room < 0) {
            PyErr_Clear();
            self->room = 0;
            bump(self->recorder, str_errors);
        }
        if (self->room == 0) {
            bump(self->recorder, str_dropped);
            return;
        }
    }
    self->room--;
    long long ref = 0;
    if (request_id == self->last_id) { /* steps of one request often come in a row */
        ref = self->last_ref;
    }
    else if (request_id != Py_None) {
        ref = request_ref(self->refs, request_id);
        if (ref < 0) {
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
    PyErr_Clear();
    bump(self->recorder, str_errors);
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
        return PyObject_Vectorcall(self->original, args, nargsf, NULL);
    }
    PyObject *request_id = request_of(&self->layout, handle, self->var);
    if (request_id == NULL) {
        PyErr_Clear();
        bump(self->recorder, str_errors);
        request_id = Py_NewRef(Py_None);
    }
    long long start = clock_ns(CLOCK_MONOTONIC);
    self->current_step = start;

    PyObject *result = PyObject_Vectorcall(self->original, args, nargsf, NULL);

    long long end = clock_ns(CLOCK_MONOTONIC);
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb); /* the original's, if it raised */
    self->current_step = 0;
    record_step(self, handle, start, end, request_id);
    Py_DECREF(request_id);
    PyErr_Restore(exc_type, exc_value, exc_tb);
    return result;
}

static PyObject *
step_hook_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"original", "recorder",   "var",
                               "handle_type", "timer_type", "long_ns", NULL};
    PyObject *original, *recorder, *var, *handle_type, *timer_type;
    long long long_ns;
    HandleLayout layout;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOL", keywords, &original, &recorder, &var,
                                     &handle_type, &timer_type, &long_ns) ||
        layout_init(&layout, handle_type, timer_type) < 0) {
        return NULL;
    }
    PyObject *log = PyObject_GetAttrString(recorder, "steps");
    if (log == NULL) {
        return NULL;
    }
    PyObject *steps = typed_attr(log, "data", &PyByteArray_Type, "recorder.steps.data");
    Py_DECREF(log);
    PyObject *refs = NULL, *stamps = NULL;
    if (steps == NULL ||
        (refs = typed_attr(recorder, "request_ids", &PyDict_Type, "recorder.request_ids")) ==
            NULL ||
        (stamps = typed_attr(recorder, "stamps", &PyDict_Type, "recorder.stamps")) == NULL) {
        Py_XDECREF(steps);
        Py_XDECREF(refs);
        return NULL;
    }
    StepHook *self = (StepHook *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(steps);
        Py_DECREF(refs);
        Py_DECREF(stamps);
        return NULL;
    }
    self->original = Py_NewRef(original);
    self->recorder = Py_NewRef(recorder);
    self->steps = steps;
    self->refs = refs;
    self->last_id = NULL;
    self->last_ref = 0;
    self->stamps = stamps;
    self->var = Py_NewRef(var);
    self->loop = Py_NewRef(Py_None);
    self->layout = layout;
    self->long_ns = long_ns;
    self->current_step = 0;
    self->room = 0;
    self->vectorcall = (vectorcallfunc)step_hook_call;
    return (PyObject *)self;
}

static int
step_hook_traverse(StepHook *self, visitproc visit, void *arg)
{
    Py_VISIT(self->original);
    Py_VISIT(self->recorder);
    Py_VISIT(self->steps);
    Py_VISIT(self->refs);
    Py_VISIT(self->last_id);
    Py_VISIT(self->stamps);
    Py_VISIT(self->var);
    Py_VISIT(self->loop);
    Py_VISIT(self->layout.handle_type);
    Py_VISIT(self->layout.timer_type);
    return 0;
}

static int
step_hook_clear(StepHook *self)
{
    Py_CLEAR(self->original);
    Py_CLEAR(self->recorder);
    Py_CLEAR(self->steps);
    Py_CLEAR(self->refs);
    Py_CLEAR(self->last_id);
    Py_CLEAR(self->stamps);
    Py_CLEAR(self->var);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->layout.handle_type);
    Py_CLEAR(self->layout.timer_type);
    return 0;
}

static void
step_hook_dealloc(StepHook *self)
{
    PyObject_GC_UnTrack(self);
    step_hook_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef step_hook_members[] = {
    {"loop", T_OBJECT, offsetof(StepHook, loop), 0, "The loop whose steps are recorded."},
    {"current_step", T_LONGLONG, offsetof(StepHook, current_step), READONLY,
     "Start of the step now running (monotonic ns), 0 between steps."},
    {"__wrapped__", T_OBJECT, offsetof(StepHook, original), READONLY, "The original."},
    {NULL},
};

static PyTypeObject StepHookType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopscope.probe._speedups.StepHook",
    .tp_doc = PyDoc_STR("StepHook(original, recorder, var, handle_type, timer_type, long_ns): "
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
};

/* ---- SoonHook: BaseEventLoop._call_soon ------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *original; /* the BaseEventLoop._call_soon it replaces */
    PyObject *recorder;
    PyObject *stamps;
    PyObject *var;
    PyObject *loop;
    HandleLayout layout;
    Py_ssize_t stamp_limit; /* past this many pending stamps they are dropped wholesale */
    vectorcallfunc vectorcall;
} SoonHook;

static void
stamp_ready(SoonHook *self, PyObject *handle)
{
    PyObject *request_id = request_of(&self->layout, handle, self->var);
    if (request_id == NULL) {
        goto failed;
    }
    int wanted = request_id != Py_None;
    Py_DECREF(request_id);
    if (!wanted) {
        return;
    }
    if (PyDict_GET_SIZE(self->stamps) > self->stamp_limit) {
        PyDict_Clear(self->stamps);
    }
    /* The handle itself is kept so its id cannot be reused while stamped. */
    PyObject *key = PyLong_FromVoidPtr(handle);
    PyObject *stamp = Py_BuildValue("(LO)", clock_ns(CLOCK_MONOTONIC), handle);
    int stored = key != NULL && stamp != NULL && PyDict_SetItem(self->stamps, key, stamp) == 0;
    Py_XDECREF(key);
    Py_XDECREF(stamp);
    if (stored) {
        return;
    }
failed:
    PyErr_Clear();
    bump(self->recorder, str_errors);
}

static PyObject *
soon_hook_call(SoonHook *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *handle = PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    if (handle != NULL && PyVectorcall_NARGS(nargsf) >= 1 && args[0] == self->loop) {
        stamp_ready(self, handle);
    }
    return handle;
}

static PyObject *
soon_hook_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"original",   "recorder",   "var",
                               "handle_type", "timer_type", "stamp_limit", NULL};
    PyObject *original, *recorder, *var, *handle_type, *timer_type;
    Py_ssize_t stamp_limit;
    HandleLayout layout;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOn", keywords, &original, &recorder, &var,
                                     &handle_type, &timer_type, &stamp_limit) ||
        layout_init(&layout, handle_type, timer_type) < 0) {
        return NULL;
    }
    PyObject *stamps = PyObject_GetAttrString(recorder, "stamps");
    if (stamps == NULL || !PyDict_Check(stamps)) {
        Py_XDECREF(stamps);
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "recorder.stamps must be a dict");
        }
        return NULL;
    }
    SoonHook *self = (SoonHook *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(stamps);
        return NULL;
    }
    self->original = Py_NewRef(original);
    self->recorder = Py_NewRef(recorder);
    self->stamps = stamps;
    self->var = Py_NewRef(var);
    self->loop = Py_NewRef(Py_None);
    self->layout = layout;
    self->stamp_limit = stamp_limit;
    self->vectorcall = (vectorcallfunc)soon_hook_call;
    return (PyObject *)self;
}

static int
soon_hook_traverse(SoonHook *self, visitproc visit, void *arg)
{
    Py_VISIT(self->original);
    Py_VISIT(self->recorder);
    Py_VISIT(self->stamps);
    Py_VISIT(self->var);
    Py_VISIT(self->loop);
    Py_VISIT(self->layout.handle_type);
    Py_VISIT(self->layout.timer_type);
    return 0;
}

static int
soon_hook_clear(SoonHook *self)
{
    Py_CLEAR(self->original);
    Py_CLEAR(self->recorder);
    Py_CLEAR(self->stamps);
    Py_CLEAR(self->var);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->layout.handle_type);
    Py_CLEAR(self->layout.timer_type);
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
    .tp_doc = PyDoc_STR("SoonHook(original, recorder, var, handle_type, timer_type, "
                        "stamp_limit): stamps when a request's handle became ready, in place "
                        "of BaseEventLoop._call_soon."),
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

/* ---- RequestWatcher: the ASGI middleware's per-request bookkeeping ----------------------- */

#define REQUEST_HEADER "x-loopscope-request"
#define MAX_REQUEST_ID 64 /* context.MAX_REQUEST_ID_LENGTH */

typedef struct {
    PyObject_HEAD
    PyObject *recorder;
    PyObject *request_ids; /* recorder.request_ids: every id given out, with its number */
    PyObject *live;        /* recorder.live: rows of the requests still running */
    PyObject *numbers;     /* recorder.finished.numbers (a bytearray) */
    LogLists texts;        /* recorder.finished.texts */
    PyObject *var;         /* REQUEST_ID */
    PyObject *clock;    /* whose `current_step` is the running step's start (a StepHook or not) */
    PyObject *prefix;   /* of generated ids: "s<pid>-" */
    long long counter;  /* generated ids so far */
} RequestWatcher;

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
    vectorcallfunc vectorcall;
} RequestWatch;

static PyTypeObject RequestWatchType;
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

/* The client's id from the x-loopscope-request header, sanitized as `sanitize_request_id`
 * does ([A-Za-z0-9._-], at most 64), or NULL (no exception) when there is none. */
static PyObject *
id_from_headers(PyObject *headers)
{
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
        if (!PyBytes_Check(name) || PyBytes_GET_SIZE(name) != sizeof(REQUEST_HEADER) - 1 ||
            memcmp(PyBytes_AS_STRING(name), REQUEST_HEADER, sizeof(REQUEST_HEADER) - 1) != 0) {
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

/* recorder.admit() without its dropped count, read and written here rather than called (a call
 * into Python costs more than the rest of a request's bookkeeping): 1 taken, 0 spent, -1 error. */
static int
take_one(PyObject *recorder)
{
    int taken = -1;
    PyObject *used = PyObject_GetAttr(recorder, str_used);
    PyObject *capacity = used != NULL ? PyObject_GetAttr(recorder, str_capacity) : NULL;
    if (capacity != NULL) {
        taken = PyObject_RichCompareBool(used, capacity, Py_LT);
        if (taken == 1) {
            PyObject *more = PyNumber_Add(used, one);
            if (more == NULL || PyObject_SetAttr(recorder, str_used, more) < 0) {
                taken = -1;
            }
            Py_XDECREF(more);
        }
    }
    Py_XDECREF(used);
    Py_XDECREF(capacity);
    return taken;
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
    int room = take_one(self->recorder);
    if (room < 0) {
        bump_after_clear(self->recorder);
        room = 0;
    }
    if (room == 0) {
        bump(self->recorder, str_dropped);
        Py_RETURN_NONE; /* the budget is spent: the request passes unrecorded */
    }
    RequestWatch *watch = NULL;
    PyObject *headers = NULL, *request_id = NULL, *row = NULL;
    PyObject *method = get_or_none(scope, str_method);
    PyObject *path = method != NULL ? get_or_none(scope, str_path) : NULL;
    if (path == NULL || (headers = get_or_none(scope, str_headers)) == NULL) {
        goto failed;
    }
    request_id = id_from_headers(headers);
    if (request_id == NULL) {
        if (PyErr_Occurred()) {
            goto failed;
        }
        request_id = PyUnicode_FromFormat("%U%lld", self->prefix, ++self->counter);
        if (request_id == NULL) {
            goto failed;
        }
    }
    int taken = PyDict_Contains(self->request_ids, request_id);
    if (taken < 0) {
        goto failed;
    }
    if (taken) { /* a client reusing an id must not overwrite the earlier request */
        Py_SETREF(request_id, PyObject_CallMethod(self->recorder, "unique_id", "O", request_id));
        if (request_id == NULL) {
            goto failed;
        }
    }
    long long first_step = current_step_of(self->clock);
    row = Py_BuildValue("(OOLL)", method, path, start, first_step);
    /* Numbered in order, as Recorder.add_request does (ids are never removed). */
    PyObject *ref = row != NULL ? PyLong_FromSsize_t(PyDict_GET_SIZE(self->request_ids) + 1)
                                : NULL;
    int stored = ref != NULL && PyDict_SetItem(self->request_ids, request_id, ref) == 0;
    Py_XDECREF(ref);
    if (!stored || PyDict_SetItem(self->live, request_id, row) < 0) {
        goto failed;
    }
    watch = PyObject_GC_New(RequestWatch, &RequestWatchType);
    if (watch == NULL) {
        goto forget;
    }
    watch->watcher = (RequestWatcher *)Py_NewRef(self);
    watch->send = Py_NewRef(send);
    watch->request_id = Py_NewRef(request_id);
    watch->method = Py_NewRef(method);
    watch->path = Py_NewRef(path);
    watch->status = NULL;
    watch->start = start;
    watch->first_step = first_step;
    watch->end = 0;
    watch->vectorcall = (vectorcallfunc)watch_call;
    watch->token = PyContextVar_Set(self->var, request_id);
    PyObject_GC_Track(watch);
    if (watch->token == NULL) {
        goto forget;
    }
    Py_DECREF(method);
    Py_DECREF(path);
    Py_DECREF(headers);
    Py_DECREF(request_id);
    Py_DECREF(row);
    return (PyObject *)watch;
forget: /* stored already: a request that never runs must not show as running forever (its
         * id stays taken: numbers are never reused) */
    PyErr_Clear();
    if (PyDict_DelItem(self->live, request_id) < 0) {
        PyErr_Clear();
    }
failed:
    PyErr_Clear();
    bump(self->recorder, str_errors);
    Py_XDECREF(watch);
    Py_XDECREF(method);
    Py_XDECREF(path);
    Py_XDECREF(headers);
    Py_XDECREF(request_id);
    Py_XDECREF(row);
    Py_RETURN_NONE;
}

static PyObject *
watcher_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"recorder", "var", "clock", "prefix", NULL};
    PyObject *recorder, *var, *clock, *prefix;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOU", keywords, &recorder, &var, &clock,
                                     &prefix)) {
        return NULL;
    }
    PyObject *finished = PyObject_GetAttrString(recorder, "finished");
    if (finished == NULL) {
        return NULL;
    }
    LogLists texts = {NULL, NULL};
    PyObject *numbers = typed_attr(finished, "numbers", &PyByteArray_Type,
                                   "recorder.finished.numbers");
    PyObject *request_ids = NULL, *live = NULL;
    if (numbers == NULL || log_lists_init(&texts, finished, "texts") < 0 ||
        (request_ids = typed_attr(recorder, "request_ids", &PyDict_Type,
                                  "recorder.request_ids")) == NULL ||
        (live = typed_attr(recorder, "live", &PyDict_Type, "recorder.live")) == NULL) {
        Py_DECREF(finished);
        Py_XDECREF(numbers);
        Py_XDECREF(texts.tail);
        Py_XDECREF(texts.chunks);
        Py_XDECREF(request_ids);
        return NULL;
    }
    Py_DECREF(finished);
    RequestWatcher *self = (RequestWatcher *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(numbers);
        Py_DECREF(texts.tail);
        Py_DECREF(texts.chunks);
        Py_DECREF(request_ids);
        Py_DECREF(live);
        return NULL;
    }
    self->recorder = Py_NewRef(recorder);
    self->request_ids = request_ids;
    self->live = live;
    self->numbers = numbers;
    self->texts = texts;
    self->var = Py_NewRef(var);
    self->clock = Py_NewRef(clock);
    self->prefix = Py_NewRef(prefix);
    self->counter = 0;
    return (PyObject *)self;
}

static int
watcher_traverse(RequestWatcher *self, visitproc visit, void *arg)
{
    Py_VISIT(self->recorder);
    Py_VISIT(self->request_ids);
    Py_VISIT(self->live);
    Py_VISIT(self->numbers);
    Py_VISIT(self->texts.tail);
    Py_VISIT(self->texts.chunks);
    Py_VISIT(self->var);
    Py_VISIT(self->clock);
    return 0;
}

static int
watcher_clear(RequestWatcher *self)
{
    Py_CLEAR(self->recorder);
    Py_CLEAR(self->request_ids);
    Py_CLEAR(self->live);
    Py_CLEAR(self->numbers);
    Py_CLEAR(self->texts.tail);
    Py_CLEAR(self->texts.chunks);
    Py_CLEAR(self->var);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->prefix);
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
    .tp_doc = PyDoc_STR("RequestWatcher(recorder, var, clock, prefix): the probe middleware's "
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
    if (PyVectorcall_NARGS(nargsf) == 1 && kwnames == NULL) {
        PyObject *kind = get_or_none(args[0], str_type);
        int start = kind != NULL && PyUnicode_Check(kind) &&
                    PyUnicode_Compare(kind, str_response_start) == 0;
        Py_XDECREF(kind);
        if (start) {
            PyObject *status = get_or_none(args[0], str_status);
            if (status != NULL) {
                Py_XSETREF(self->status, status);
            }
        }
        if (PyErr_Occurred()) {
            PyErr_Clear();
            bump(self->watcher->recorder, str_errors);
        }
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

/* finish(scope): store the request's row and reset REQUEST_ID; call once, when the app is done. */
static PyObject *
watch_finish(RequestWatch *self, PyObject *scope)
{
    RequestWatcher *watcher = self->watcher;
    PyObject *template = NULL;
    PyObject *route = get_or_none(scope, str_route);
    if (route != NULL && route != Py_None) {
        /* The router's matched route: its template is checked at collect time. */
        template = PyObject_GetAttr(route, str_path);
    }
    Py_XDECREF(route);
    if (template == NULL) {
        /* No `path` is no template, as getattr(route, "path", None) has it; else count it. */
        if (PyErr_Occurred() && !PyErr_ExceptionMatches(PyExc_AttributeError)) {
            bump_after_clear(watcher->recorder);
        }
        PyErr_Clear();
        template = Py_NewRef(Py_None);
    }
    long long end = self->end ? self->end : clock_ns(CLOCK_MONOTONIC);
    /* FinishedLog.append: the strings first, then the numbers that point at them. */
    long long numbers[6] = {self->start, self->first_step, end, status_of(self->status),
                            current_step_of(watcher->clock), log_length(&watcher->texts)};
    PyObject *texts[4] = {self->request_id, self->method, self->path, template};
    int stored = 1;
    for (int i = 0; i < 4 && stored; i++) {
        stored = log_append(&watcher->texts, texts[i]) == 0;
    }
    if (!stored || bytes_append(watcher->numbers, numbers, sizeof(numbers)) < 0) {
        bump_after_clear(watcher->recorder);
    }
    Py_DECREF(template);
    if (PyDict_DelItem(watcher->live, self->request_id) < 0) {
        PyErr_Clear(); /* not there: nothing to forget */
    }
    if (self->token != NULL) {
        if (PyContextVar_Reset(watcher->var, self->token) < 0) {
            PyErr_Clear();
            bump(watcher->recorder, str_errors);
        }
        Py_CLEAR(self->token);
    }
    Py_RETURN_NONE;
}

static int
watch_traverse(RequestWatch *self, visitproc visit, void *arg)
{
    Py_VISIT(self->watcher);
    Py_VISIT(self->send);
    Py_VISIT(self->token);
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

static PyMemberDef watch_members[] = {
    {"request_id", T_OBJECT, offsetof(RequestWatch, request_id), READONLY, "The id given."},
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
    INTERN(str_take, "take");
    INTERN(str_current_step, "current_step");
    INTERN(str_method, "method");
    INTERN(str_path, "path");
    INTERN(str_headers, "headers");
    INTERN(str_route, "route");
    INTERN(str_type, "type");
    INTERN(str_status, "status");
    INTERN(str_response_start, "http.response.start");
    INTERN(str_used, "used");
    INTERN(str_capacity, "capacity");
    INTERN(str_when, "_when");
    INTERN(str_dropped, "dropped");
    INTERN(str_errors, "errors");
    if ((one = PyLong_FromLong(1)) == NULL ||
        (chunk = PyLong_FromLong(BUDGET_CHUNK)) == NULL) {
        return NULL;
    }
    if (PyType_Ready(&StepHookType) < 0 || PyType_Ready(&SoonHookType) < 0 ||
        PyType_Ready(&RequestWatcherType) < 0 || PyType_Ready(&RequestWatchType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "StepHook", (PyObject *)&StepHookType) < 0 ||
        PyModule_AddObjectRef(module, "SoonHook", (PyObject *)&SoonHookType) < 0 ||
        PyModule_AddObjectRef(module, "RequestWatcher", (PyObject *)&RequestWatcherType) < 0 ||
        PyModule_AddIntConstant(module, "BUDGET_CHUNK", BUDGET_CHUNK) < 0 ||
        PyModule_AddIntConstant(module, "LOG_CHUNK", LOG_CHUNK) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
