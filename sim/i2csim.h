/* I2C simulator preloaded under unmodified programs (i2c-tools, smbus2): shared declarations.
 *
 * Data flow: `edge-metrics simulate` compiles the YAML device model to a flat text file (model.c reads
 * it), registers that writes changed live in a shared state file (state.c) so that one process sees what
 * another wrote, device.c turns SMBus / I2C transfers into register reads and writes, and preload.c
 * intercepts open/close/ioctl of /dev/i2c-N.
 */
#ifndef EDGE_I2CSIM_H
#define EDGE_I2CSIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SIM_MAX_BLOCK 32      /* I2C_SMBUS_BLOCK_MAX */
#define SIM_MAX_WIRE 40       /* bytes one register can put on the wire (block: count + 32) */
#define SIM_REGS 256
#define SIM_POINTER_SLOT 256  /* state slot holding a device's register pointer */
#define SIM_CHIP_SLOT 257     /* state slot holding a chip model's state (chips.c) */
#define SIM_CHIP_INPUTS 24    /* analogue inputs and calibration words of a chip model */

enum sim_kind { KIND_BYTE, KIND_WORD, KIND_BLOCK };
enum sim_func { FUNC_CONST, FUNC_SEQ, FUNC_RAMP, FUNC_SINE, FUNC_BYTES };

/* A value that may change with wall-clock time (so that separate processes agree on it). */
struct sim_spec {
    enum sim_func func;
    int64_t period_ms;        /* seq: step; ramp, sine: period */
    int64_t a, b;             /* const: a; ramp: from a to b; sine: centre a, amplitude b */
    int n;                    /* seq: number of values; bytes: number of bytes */
    int64_t *values;          /* seq values, or bytes */
};

/* A register whose value is chosen by the bits of another register (ADS1115 conversion by MUX). */
struct sim_case {
    int select_reg;
    int64_t mask, key;
    struct sim_spec spec;
    struct sim_case *next;
};

struct sim_reg {
    int present;
    enum sim_kind kind;
    int big_endian;           /* word byte order on the wire: most significant byte first */
    int writable;
    struct sim_spec spec;
    struct sim_case *cases;
};

/* Chip models (chips.c): the datasheet's behaviour, not a register file. Order as in simulate/chips.py. */
enum sim_chip { CHIP_NONE, CHIP_BME280, CHIP_SHT3X, CHIP_INA219, CHIP_ADS1115, CHIP_TMP102 };
enum sim_fault { FAULT_NONE, FAULT_WRONG_ID, FAULT_STUCK_BUSY, FAULT_BAD_CRC };

struct sim_device {
    int chip;                 /* enum sim_chip; CHIP_NONE: the register file below */
    int fault;                /* enum sim_fault */
    struct sim_spec inputs[SIM_CHIP_INPUTS];
    int absent;               /* listed but does not acknowledge */
    uint32_t nack_ppm;        /* probability of a NACK per transfer, in millionths */
    int64_t delay_us;         /* per transfer */
    int writable;             /* every register (also unlisted ones) takes writes */
    struct sim_reg regs[SIM_REGS];
};

struct sim_bus {
    int number;
    int hung;                 /* every transfer blocks until the process is killed */
    int64_t delay_us;
    struct sim_device *devices[128];
};

struct sim_model {
    int nbuses;
    struct sim_bus *buses;
    /* The YAML source and the stamp it had when compiled, to wait for a recompile after it changes. */
    char source[4096];
    int64_t source_mtime_ns, source_size;
};

/* model.c */
struct sim_model *sim_model_load(const char *path, char *err, size_t errlen);
void sim_model_free(struct sim_model *model);
struct sim_bus *sim_model_bus(struct sim_model *model, int number);

/* state.c: wire bytes written to registers, shared between processes (flock-protected file). */
void sim_state_init(const char *path);
int sim_state_get(int bus, int addr, int slot, uint8_t *out, int cap);
void sim_state_put(int bus, int addr, int slot, const uint8_t *bytes, int len);

/* One transfer's target, as device.c resolved it. */
struct sim_io {
    struct sim_bus *bus;
    int addr;
    struct sim_device *dev;
    int64_t now_ms;
};

/* chips.c: a write message (first byte: register pointer or command) or a read message; 0 or -errno. */
int sim_chip_write(const struct sim_io *io, const uint8_t *buf, int len);
int sim_chip_read(const struct sim_io *io, uint8_t *buf, int len);

/* device.c */
int64_t sim_eval(const struct sim_spec *spec, int64_t now_ms);
int sim_smbus(struct sim_bus *bus, int addr, int read_write, int command, int size, void *data);
int sim_rdwr(struct sim_bus *bus, void *msgs, unsigned nmsgs);

/* preload.c: the real libc functions, for the library's own file access. */
int sim_real_open(const char *path, int flags, mode_t mode);
int sim_real_close(int fd);

#endif
