/* LD_PRELOAD entry points: /dev/i2c-N (and /dev/i2c/N) exist for the buses of the model.
 *
 * stat() and access() of such a path describe a character device (major 89, as i2c-dev), so a script's
 * `[[ -c /dev/i2c-1 ]]` guard behaves as on the board; fstat() of the open descriptor does not.
 * open() of such a path returns a real descriptor (an anonymous memfd, so close, fcntl and dup behave)
 * remembered in a table; ioctl() on it is served from the model; everything else passes through to
 * libc untouched. A bus missing from the model fails with ENOENT, exactly as on a machine without it.
 *
 * Environment (set by `edge-metrics simulate`):
 *   EDGE_I2C_SIM_MODEL  compiled model file; re-read when it is replaced
 *   EDGE_I2C_SIM_STATE  shared file of written register values
 * Without EDGE_I2C_SIM_MODEL the library does nothing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/i2c-dev.h>
#include <linux/i2c.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "i2csim.h"

#define MAX_OPEN 64

struct open_bus {
    int fd; /* -1: free slot */
    dev_t dev;
    ino_t ino; /* identifies our memfd, in case the fd was closed behind our back (close_range) */
    int bus;
    int addr;
};

static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static int (*real_ioctl)(int, unsigned long, ...);
static int (*real_stat)(const char *, struct stat *);
static int (*real_lstat)(const char *, struct stat *);
static int (*real_stat64)(const char *, struct stat64 *);
static int (*real_lstat64)(const char *, struct stat64 *);
static int (*real_fstatat)(int, const char *, struct stat *, int);
static int (*real_fstatat64)(int, const char *, struct stat64 *, int);
static int (*real_access)(const char *, int);
static int (*real_faccessat)(int, const char *, int, int);
static int (*real_eaccess)(const char *, int);
static int (*real_euidaccess)(const char *, int);
static int (*real_statx)(int, const char *, int, unsigned, struct statx *);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct open_bus table[MAX_OPEN];
/* Entries in use. close() and ioctl() run in every process under the simulator (the collector, bash);
 * while no bus is open they pass straight through without taking the lock, so a fork in a threaded
 * program can never leave the child waiting on a lock another thread held. */
static int open_count;
static struct sim_model *model;
static struct stat model_stat;
static const char *model_path;

static void resolve(void)
{
    if (real_open)
        return;
    real_openat = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
    real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
    real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
    real_stat = (int (*)(const char *, struct stat *))dlsym(RTLD_NEXT, "stat");
    real_lstat = (int (*)(const char *, struct stat *))dlsym(RTLD_NEXT, "lstat");
    real_stat64 = (int (*)(const char *, struct stat64 *))dlsym(RTLD_NEXT, "stat64");
    real_lstat64 = (int (*)(const char *, struct stat64 *))dlsym(RTLD_NEXT, "lstat64");
    real_fstatat = (int (*)(int, const char *, struct stat *, int))dlsym(RTLD_NEXT, "fstatat");
    real_fstatat64 = (int (*)(int, const char *, struct stat64 *, int))dlsym(RTLD_NEXT, "fstatat64");
    real_access = (int (*)(const char *, int))dlsym(RTLD_NEXT, "access");
    real_faccessat = (int (*)(int, const char *, int, int))dlsym(RTLD_NEXT, "faccessat");
    real_eaccess = (int (*)(const char *, int))dlsym(RTLD_NEXT, "eaccess");
    real_euidaccess = (int (*)(const char *, int))dlsym(RTLD_NEXT, "euidaccess");
    real_statx = (int (*)(int, const char *, int, unsigned, struct statx *))dlsym(RTLD_NEXT, "statx");
    real_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
}

/* A child of fork() has only the forking thread: a lock held by another thread would never be released. */
static void reset_lock_in_child(void)
{
    pthread_mutex_init(&lock, NULL);
}

__attribute__((constructor)) static void init(void)
{
    resolve();
    pthread_atfork(NULL, NULL, reset_lock_in_child);
    for (int i = 0; i < MAX_OPEN; i++)
        table[i].fd = -1;
    model_path = getenv("EDGE_I2C_SIM_MODEL");
    if (model_path && !*model_path)
        model_path = NULL;
    sim_state_init(getenv("EDGE_I2C_SIM_STATE"));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    srandom((unsigned)(now.tv_nsec ^ getpid()));
}

int sim_real_open(const char *path, int flags, mode_t mode)
{
    resolve();
    return real_open(path, flags, mode);
}

int sim_real_close(int fd)
{
    resolve();
    return real_close(fd);
}

/* The bus number in /dev/i2c-N or /dev/i2c/N, or -1 for any other path. */
static int bus_number(const char *path)
{
    const char *digits;
    if (!path)
        return -1;
    if (strncmp(path, "/dev/i2c-", 9) == 0)
        digits = path + 9;
    else if (strncmp(path, "/dev/i2c/", 9) == 0)
        digits = path + 9;
    else
        return -1;
    if (*digits < '0' || *digits > '9')
        return -1;
    char *end;
    long number = strtol(digits, &end, 10);
    return *end || number > 1000000 ? -1 : (int)number;
}

static int same_stat(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Load the compiled model, or reload it when `simulate` replaced it. Called with the lock held. */
static int refresh_model(void)
{
    struct stat st;
    if (real_stat(model_path, &st) < 0) {
        if (!model) {
            fprintf(stderr, "i2c-sim: cannot read model %s: %s\n", model_path, strerror(errno));
            return -1;
        }
        return 0; /* keep the last one */
    }
    if (model && same_stat(&st, &model_stat))
        return 0;
    char err[512];
    struct sim_model *loaded = sim_model_load(model_path, err, sizeof(err));
    if (!loaded) {
        fprintf(stderr, "i2c-sim: %s\n", err);
        return model ? 0 : -1;
    }
    /* The old model is not freed: a transfer in another thread may still use its buses. Reloads are
     * rare (a person edited the YAML), so the leak is bounded by the edits made. */
    model = loaded;
    model_stat = st;
    return 0;
}

/* After the YAML changed, give `simulate` (it polls) a moment to recompile before serving old values:
 * a test that edits the model and then runs a program must see the edit. */
static void wait_for_recompile(void)
{
    for (int waited_ms = 0; model && model->source[0] && waited_ms < 2000; waited_ms += 10) {
        struct stat src;
        if (real_stat(model->source, &src) < 0)
            return;
        int64_t mtime_ns = (int64_t)src.st_mtim.tv_sec * 1000000000 + src.st_mtim.tv_nsec;
        if (mtime_ns == model->source_mtime_ns && (int64_t)src.st_size == model->source_size)
            return;
        struct timespec pause_10ms = {0, 10 * 1000 * 1000};
        pthread_mutex_unlock(&lock);
        nanosleep(&pause_10ms, NULL);
        pthread_mutex_lock(&lock);
        refresh_model();
    }
}

static int open_bus(int number, int flags)
{
    pthread_mutex_lock(&lock);
    int ok = refresh_model() == 0;
    if (ok)
        wait_for_recompile();
    if (!ok) {
        pthread_mutex_unlock(&lock);
        errno = EIO;
        return -1;
    }
    if (!sim_model_bus(model, number)) {
        pthread_mutex_unlock(&lock);
        errno = ENOENT; /* as if the adapter did not exist */
        return -1;
    }
    int slot = -1;
    for (int i = 0; i < MAX_OPEN && slot < 0; i++)
        if (table[i].fd < 0)
            slot = i;
    if (slot < 0) {
        pthread_mutex_unlock(&lock);
        errno = EMFILE;
        return -1;
    }
    int fd = memfd_create("i2c-sim", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int saved = errno;
        if (fd >= 0)
            real_close(fd);
        pthread_mutex_unlock(&lock);
        errno = saved;
        return -1;
    }
    table[slot] = (struct open_bus){fd, st.st_dev, st.st_ino, number, -1};
    __atomic_add_fetch(&open_count, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&lock);
    return fd;
}

/* The table entry of fd, if it is still our memfd. Called with the lock held. */
static struct open_bus *lookup(int fd)
{
    for (int i = 0; i < MAX_OPEN; i++) {
        if (table[i].fd != fd)
            continue;
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_ino == table[i].ino && st.st_dev == table[i].dev)
            return &table[i];
        table[i].fd = -1; /* stale: closed without close() and the number reused */
        __atomic_sub_fetch(&open_count, 1, __ATOMIC_RELEASE);
        return NULL;
    }
    return NULL;
}

static int sim_open(const char *path, int flags, mode_t mode, int dirfd, int at)
{
    resolve();
    int number = model_path ? bus_number(path) : -1;
    if (number >= 0)
        return open_bus(number, flags);
    return at ? real_openat(dirfd, path, flags, mode) : real_open(path, flags, mode);
}

static mode_t mode_arg(int flags, va_list args)
{
    return (flags & (O_CREAT | __O_TMPFILE)) ? (mode_t)va_arg(args, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_arg(flags, args);
    va_end(args);
    return sim_open(path, flags, mode, AT_FDCWD, 0);
}

int open64(const char *path, int flags, ...)
{
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_arg(flags, args);
    va_end(args);
    return sim_open(path, flags, mode, AT_FDCWD, 0);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_arg(flags, args);
    va_end(args);
    return sim_open(path, flags, mode, dirfd, 1);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list args;
    va_start(args, flags);
    mode_t mode = mode_arg(flags, args);
    va_end(args);
    return sim_open(path, flags, mode, dirfd, 1);
}

/* _FORTIFY_SOURCE builds call these when the flags are not known at compile time. */
int __open_2(const char *path, int flags)
{
    return sim_open(path, flags, 0, AT_FDCWD, 0);
}

int __open64_2(const char *path, int flags)
{
    return sim_open(path, flags, 0, AT_FDCWD, 0);
}

int close(int fd)
{
    resolve();
    if (__atomic_load_n(&open_count, __ATOMIC_ACQUIRE) > 0) {
        pthread_mutex_lock(&lock);
        for (int i = 0; i < MAX_OPEN; i++) {
            if (table[i].fd == fd) {
                table[i].fd = -1;
                __atomic_sub_fetch(&open_count, 1, __ATOMIC_RELEASE);
            }
        }
        pthread_mutex_unlock(&lock);
    }
    return real_close(fd);
}

static const unsigned long FUNCS = I2C_FUNC_I2C | I2C_FUNC_SMBUS_QUICK | I2C_FUNC_SMBUS_BYTE |
                                   I2C_FUNC_SMBUS_BYTE_DATA | I2C_FUNC_SMBUS_WORD_DATA |
                                   I2C_FUNC_SMBUS_PROC_CALL | I2C_FUNC_SMBUS_BLOCK_DATA |
                                   I2C_FUNC_SMBUS_I2C_BLOCK;

static int fail(int negative_errno)
{
    errno = -negative_errno;
    return -1;
}

static int sim_ioctl(struct open_bus *entry, unsigned long request, unsigned long arg)
{
    switch (request) {
    case I2C_FUNCS:
        if (!arg)
            return fail(-EFAULT);
        *(unsigned long *)arg = FUNCS;
        return 0;
    case I2C_SLAVE:
    case I2C_SLAVE_FORCE:
        if (arg > 0x7f)
            return fail(-EINVAL);
        entry->addr = (int)arg;
        return 0;
    case I2C_TENBIT:
        return arg ? fail(-EOPNOTSUPP) : 0;
    case I2C_PEC:
    case I2C_RETRIES:
    case I2C_TIMEOUT:
        return 0;
    default:
        return fail(-ENOTTY);
    }
}

/* Transfers run without the lock held: a hung bus must block only its caller. */
static int transfer(int number, int addr, unsigned long request, unsigned long arg)
{
    pthread_mutex_lock(&lock);
    refresh_model();
    struct sim_bus *bus = sim_model_bus(model, number);
    pthread_mutex_unlock(&lock);
    if (!bus)
        return fail(-ENODEV); /* the model was re-read without this bus: the adapter went away */
    int status;
    if (request == I2C_SMBUS) {
        struct i2c_smbus_ioctl_data *args = (struct i2c_smbus_ioctl_data *)arg;
        if (!args)
            return fail(-EFAULT);
        if (addr < 0)
            return fail(-EINVAL); /* no I2C_SLAVE yet: the kernel would use address 0 */
        status = sim_smbus(bus, addr, args->read_write, args->command, (int)args->size, args->data);
    } else {
        struct i2c_rdwr_ioctl_data *args = (struct i2c_rdwr_ioctl_data *)arg;
        if (!args)
            return fail(-EFAULT);
        status = sim_rdwr(bus, args->msgs, args->nmsgs);
    }
    return status < 0 ? fail(status) : status;
}

int ioctl(int fd, unsigned long request, ...)
{
    va_list args;
    va_start(args, request);
    unsigned long arg = va_arg(args, unsigned long);
    va_end(args);
    resolve();
    if (!model_path || __atomic_load_n(&open_count, __ATOMIC_ACQUIRE) == 0)
        return real_ioctl(fd, request, arg);
    pthread_mutex_lock(&lock);
    struct open_bus *entry = lookup(fd);
    if (!entry) {
        pthread_mutex_unlock(&lock);
        return real_ioctl(fd, request, arg);
    }
    if (request != I2C_SMBUS && request != I2C_RDWR) {
        int result = sim_ioctl(entry, request, arg);
        pthread_mutex_unlock(&lock);
        return result;
    }
    int number = entry->bus, addr = entry->addr;
    pthread_mutex_unlock(&lock);
    return transfer(number, addr, request, arg);
}

/* For stat() and access() of a path: -1 not a bus path (pass through), 0 a bus the model lacks,
 * 1 a simulated bus (st, when given, filled in as its character device). */
static int bus_node(const char *path, struct stat *st)
{
    resolve();
    int number = model_path ? bus_number(path) : -1;
    if (number < 0)
        return -1;
    pthread_mutex_lock(&lock);
    int exists = refresh_model() == 0 && sim_model_bus(model, number) != NULL;
    pthread_mutex_unlock(&lock);
    if (exists && st) {
        memset(st, 0, sizeof(*st));
        st->st_mode = S_IFCHR | 0660;
        st->st_rdev = makedev(89, (unsigned)number);
        st->st_nlink = 1;
        st->st_blksize = 4096;
    }
    return exists;
}

static int node_result(int found)
{
    if (found)
        return 0;
    errno = ENOENT;
    return -1;
}

/* struct stat64 and struct stat are the same on 64-bit glibc; the copy keeps this right elsewhere. */
static int node_stat64(const char *path, struct stat64 *out)
{
    struct stat st;
    int found = bus_node(path, &st);
    if (found > 0) {
        memset(out, 0, sizeof(*out));
        out->st_mode = st.st_mode;
        out->st_rdev = st.st_rdev;
        out->st_nlink = st.st_nlink;
        out->st_blksize = st.st_blksize;
    }
    return found;
}

int stat(const char *path, struct stat *st)
{
    int found = bus_node(path, st);
    return found < 0 ? real_stat(path, st) : node_result(found);
}

int lstat(const char *path, struct stat *st)
{
    int found = bus_node(path, st);
    return found < 0 ? real_lstat(path, st) : node_result(found);
}

int stat64(const char *path, struct stat64 *st)
{
    int found = node_stat64(path, st);
    return found < 0 ? real_stat64(path, st) : node_result(found);
}

int lstat64(const char *path, struct stat64 *st)
{
    int found = node_stat64(path, st);
    return found < 0 ? real_lstat64(path, st) : node_result(found);
}

int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
    int found = bus_node(path, st);
    return found < 0 ? real_fstatat(dirfd, path, st, flags) : node_result(found);
}

int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
    int found = node_stat64(path, st);
    return found < 0 ? real_fstatat64(dirfd, path, st, flags) : node_result(found);
}

/* coreutils (ls, stat, test) use statx. */
int statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *out)
{
    struct stat st;
    int found = bus_node(path, &st);
    if (found < 0)
        return real_statx(dirfd, path, flags, mask, out);
    if (found) {
        memset(out, 0, sizeof(*out));
        out->stx_mask = STATX_TYPE | STATX_MODE | STATX_NLINK;
        out->stx_mode = (uint16_t)st.st_mode;
        out->stx_nlink = 1;
        out->stx_blksize = 4096;
        out->stx_rdev_major = major(st.st_rdev);
        out->stx_rdev_minor = minor(st.st_rdev);
    }
    return node_result(found);
}

int access(const char *path, int mode)
{
    int found = bus_node(path, NULL);
    return found < 0 ? real_access(path, mode) : node_result(found);
}

int faccessat(int dirfd, const char *path, int mode, int flags)
{
    int found = bus_node(path, NULL);
    return found < 0 ? real_faccessat(dirfd, path, mode, flags) : node_result(found);
}

int eaccess(const char *path, int mode)
{
    int found = bus_node(path, NULL);
    return found < 0 ? real_eaccess(path, mode) : node_result(found);
}

int euidaccess(const char *path, int mode)
{
    int found = bus_node(path, NULL);
    return found < 0 ? real_euidaccess(path, mode) : node_result(found);
}
