/* Simulated devices: SMBus and plain I2C transfers become reads and writes of a register file.
 *
 * Each register puts bytes on the wire: a byte register one, a word register two (most significant
 * first for big-endian sensors, which is why an SMBus word read, least significant byte first, comes
 * back swapped), a block register its count and data. A device keeps a register pointer; reads and
 * writes stream from it and run on into the next register, as most sensors and EEPROMs do.
 */
#include <errno.h>
#include <linux/i2c-dev.h>
#include <linux/i2c.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "i2csim.h"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_us(int64_t us)
{
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    while (us > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* sin(2*pi*phase) for phase in [0, 1): a Taylor series, so the library needs no libm. */
static double sine_of_phase(double phase)
{
    const double pi = 3.14159265358979323846;
    double x = 2 * pi * (phase - 0.5); /* in [-pi, pi); sin(x + pi) = -sin(x) */
    double term = x, sum = x;
    for (int k = 1; k < 14; k++) {
        term *= -x * x / ((2 * k) * (2 * k + 1));
        sum += term;
    }
    return -sum;
}

static int64_t round_half_away(double value)
{
    return (int64_t)(value >= 0 ? value + 0.5 : value - 0.5);
}

int64_t sim_eval(const struct sim_spec *spec, int64_t now_ms)
{
    switch (spec->func) {
    case FUNC_SEQ:
        return spec->values[(now_ms / spec->period_ms) % spec->n];
    case FUNC_RAMP: {
        double phase = (double)(now_ms % spec->period_ms) / (double)spec->period_ms;
        return round_half_away((double)spec->a + (double)(spec->b - spec->a) * phase);
    }
    case FUNC_SINE: {
        double phase = (double)(now_ms % spec->period_ms) / (double)spec->period_ms;
        return round_half_away((double)spec->a + (double)spec->b * sine_of_phase(phase));
    }
    default:
        return spec->a;
    }
}

static int reg_writable(const struct sim_device *dev, int regno)
{
    return dev->writable || (dev->regs[regno].present && dev->regs[regno].writable);
}

static int reg_wire(const struct sim_io *t, int regno, uint8_t *out, int depth);

/* The register's current value as a number (what a datasheet would call its content). */
static int64_t reg_number(const struct sim_io *t, int regno, int depth)
{
    uint8_t wire[SIM_MAX_WIRE];
    int len = reg_wire(t, regno, wire, depth);
    const struct sim_reg *reg = &t->dev->regs[regno];
    if (reg->present && reg->kind == KIND_WORD && len >= 2)
        return reg->big_endian ? (wire[0] << 8 | wire[1]) : (wire[1] << 8 | wire[0]);
    return len >= 1 ? wire[0] : 0;
}

static int reg_wire(const struct sim_io *t, int regno, uint8_t *out, int depth)
{
    const struct sim_reg *reg = &t->dev->regs[regno];
    if (reg_writable(t->dev, regno)) {
        int len = sim_state_get(t->bus->number, t->addr, regno, out, SIM_MAX_WIRE);
        if (len > 0)
            return len;
    }
    if (!reg->present) {
        out[0] = 0; /* unlisted registers read as zero */
        return 1;
    }
    const struct sim_spec *spec = &reg->spec;
    /* depth bounds a chain of selections (a register selected by itself would loop). */
    for (const struct sim_case *entry = reg->cases; entry && depth < 4; entry = entry->next) {
        if ((reg_number(t, entry->select_reg, depth + 1) & entry->mask) == entry->key) {
            spec = &entry->spec;
            break;
        }
    }
    if (reg->kind == KIND_BLOCK) {
        int n = spec->func == FUNC_BYTES ? spec->n : 0;
        if (n > SIM_MAX_BLOCK)
            n = SIM_MAX_BLOCK;
        out[0] = (uint8_t)n;
        for (int i = 0; i < n; i++)
            out[1 + i] = (uint8_t)spec->values[i];
        return n + 1;
    }
    uint64_t value = (uint64_t)sim_eval(spec, t->now_ms); /* negative values: two's complement */
    if (reg->kind == KIND_BYTE) {
        out[0] = (uint8_t)value;
        return 1;
    }
    uint8_t high = (uint8_t)(value >> 8), low = (uint8_t)value;
    out[0] = reg->big_endian ? high : low;
    out[1] = reg->big_endian ? low : high;
    return 2;
}

struct pointer {
    int reg, offset;
};

static struct pointer load_pointer(const struct sim_io *t)
{
    uint8_t bytes[2];
    struct pointer p = {0, 0};
    if (sim_state_get(t->bus->number, t->addr, SIM_POINTER_SLOT, bytes, 2) == 2)
        p = (struct pointer){bytes[0], bytes[1]};
    return p;
}

static void store_pointer(const struct sim_io *t, struct pointer p)
{
    uint8_t bytes[2] = {(uint8_t)p.reg, (uint8_t)p.offset};
    sim_state_put(t->bus->number, t->addr, SIM_POINTER_SLOT, bytes, 2);
}

static void stream_read(const struct sim_io *t, struct pointer *p, uint8_t *out, int n)
{
    uint8_t wire[SIM_MAX_WIRE];
    while (n > 0) {
        int len = reg_wire(t, p->reg, wire, 0);
        while (n > 0 && p->offset < len) {
            *out++ = wire[p->offset++];
            n--;
        }
        if (p->offset >= len)
            *p = (struct pointer){(p->reg + 1) & 0xff, 0};
    }
}

static void stream_write(const struct sim_io *t, struct pointer *p, const uint8_t *in, int n)
{
    uint8_t wire[SIM_MAX_WIRE];
    while (n > 0) {
        int regno = p->reg;
        const struct sim_reg *reg = &t->dev->regs[regno];
        int writable = reg_writable(t->dev, regno);
        if (reg->present && reg->kind == KIND_BLOCK && p->offset == 0) {
            /* A block write replaces count and data together. */
            int len = n < SIM_MAX_BLOCK + 1 ? n : SIM_MAX_BLOCK + 1;
            if (writable)
                sim_state_put(t->bus->number, t->addr, regno, in, len);
            in += len;
            n -= len;
            *p = (struct pointer){(regno + 1) & 0xff, 0};
            continue;
        }
        int len = reg_wire(t, regno, wire, 0);
        int changed = 0;
        while (n > 0 && p->offset < len) {
            wire[p->offset++] = *in++;
            n--;
            changed = 1;
        }
        /* Read-only registers acknowledge writes and ignore them, as sensors do. */
        if (changed && writable)
            sim_state_put(t->bus->number, t->addr, regno, wire, len);
        if (p->offset >= len)
            *p = (struct pointer){(regno + 1) & 0xff, 0};
    }
}

/* Faults and timing of one transfer to addr: 0 when the device acknowledges, or -errno. */
static int begin(struct sim_io *t, struct sim_bus *bus, int addr)
{
    *t = (struct sim_io){bus, addr, bus->devices[addr & 0x7f], wall_ms()};
    if (bus->hung) {
        /* SDA held low: the transfer never completes; only a signal ends the process. */
        for (;;)
            pause();
    }
    if (bus->delay_us > 0)
        sleep_us(bus->delay_us);
    if (!t->dev || t->dev->absent)
        return -ENXIO; /* nobody acknowledged the address */
    if (t->dev->delay_us > 0)
        sleep_us(t->dev->delay_us);
    if (t->dev->nack_ppm > 0 && (uint32_t)(random() % 1000000) < t->dev->nack_ppm)
        return -ENXIO;
    t->now_ms = wall_ms();
    return 0;
}

/* An SMBus transfer to a chip model, as the adapter puts it on the wire: a write of the command byte (and
 * data, least significant byte first for words), then for reads a repeated start and a read. */
static int chip_smbus(const struct sim_io *t, int reading, int command, int size, union i2c_smbus_data *data)
{
    uint8_t bytes[SIM_MAX_BLOCK + 2] = {(uint8_t)command};
    int status;
    switch (size) {
    case I2C_SMBUS_QUICK:
        return 0;
    case I2C_SMBUS_BYTE:
        return reading ? sim_chip_read(t, &data->byte, 1) : sim_chip_write(t, bytes, 1);
    case I2C_SMBUS_BYTE_DATA:
        if (!reading) {
            bytes[1] = data->byte;
            return sim_chip_write(t, bytes, 2);
        }
        status = sim_chip_write(t, bytes, 1);
        return status < 0 ? status : sim_chip_read(t, &data->byte, 1);
    case I2C_SMBUS_WORD_DATA:
        if (!reading) {
            bytes[1] = (uint8_t)data->word;
            bytes[2] = (uint8_t)(data->word >> 8);
            return sim_chip_write(t, bytes, 3);
        }
        status = sim_chip_write(t, bytes, 1);
        if (status < 0 || (status = sim_chip_read(t, bytes, 2)) < 0)
            return status;
        data->word = (uint16_t)(bytes[0] | bytes[1] << 8);
        return 0;
    case I2C_SMBUS_I2C_BLOCK_BROKEN:
    case I2C_SMBUS_I2C_BLOCK_DATA:
        if (data->block[0] == 0 || data->block[0] > SIM_MAX_BLOCK)
            return -EINVAL;
        if (!reading) {
            memcpy(bytes + 1, &data->block[1], data->block[0]);
            return sim_chip_write(t, bytes, data->block[0] + 1);
        }
        status = sim_chip_write(t, bytes, 1);
        return status < 0 ? status : sim_chip_read(t, &data->block[1], data->block[0]);
    default:
        return -EOPNOTSUPP; /* these chips speak no SMBus block or process-call protocol */
    }
}

int sim_smbus(struct sim_bus *bus, int addr, int read_write, int command, int size, void *data_ptr)
{
    union i2c_smbus_data *data = data_ptr;
    int reading = read_write == I2C_SMBUS_READ;
    /* Quick commands and send-byte (a write of size BYTE) carry no data. */
    if (!data && size != I2C_SMBUS_QUICK && !(size == I2C_SMBUS_BYTE && !reading))
        return -EINVAL;
    struct sim_io t;
    int status = begin(&t, bus, addr);
    if (status < 0)
        return status;
    if (t.dev->chip != CHIP_NONE)
        return chip_smbus(&t, reading, command, size, data);
    struct pointer p = {command & 0xff, 0};
    uint8_t bytes[SIM_MAX_WIRE];
    switch (size) {
    case I2C_SMBUS_QUICK:
        return 0;
    case I2C_SMBUS_BYTE:
        if (reading) {
            p = load_pointer(&t);
            stream_read(&t, &p, &data->byte, 1);
        }
        store_pointer(&t, p); /* a send-byte only sets the pointer */
        return 0;
    case I2C_SMBUS_BYTE_DATA:
        if (reading)
            stream_read(&t, &p, &data->byte, 1);
        else
            stream_write(&t, &p, &data->byte, 1);
        return 0;
    case I2C_SMBUS_WORD_DATA:
    case I2C_SMBUS_PROC_CALL:
        if (!reading || size == I2C_SMBUS_PROC_CALL) {
            bytes[0] = (uint8_t)data->word; /* SMBus sends the low byte first */
            bytes[1] = (uint8_t)(data->word >> 8);
            stream_write(&t, &p, bytes, 2);
            p = (struct pointer){command & 0xff, 0};
        }
        if (reading || size == I2C_SMBUS_PROC_CALL) {
            stream_read(&t, &p, bytes, 2);
            data->word = (uint16_t)(bytes[0] | bytes[1] << 8);
        }
        return 0;
    case I2C_SMBUS_BLOCK_DATA:
        if (reading) {
            stream_read(&t, &p, bytes, 1);
            if (bytes[0] == 0 || bytes[0] > SIM_MAX_BLOCK)
                return -EPROTO; /* what the kernel reports for an invalid block count */
            data->block[0] = bytes[0];
            stream_read(&t, &p, &data->block[1], bytes[0]);
        } else {
            if (data->block[0] == 0 || data->block[0] > SIM_MAX_BLOCK)
                return -EINVAL;
            stream_write(&t, &p, data->block, data->block[0] + 1);
        }
        return 0;
    case I2C_SMBUS_I2C_BLOCK_BROKEN:
    case I2C_SMBUS_I2C_BLOCK_DATA:
        if (data->block[0] == 0 || data->block[0] > SIM_MAX_BLOCK)
            return -EINVAL;
        if (reading)
            stream_read(&t, &p, &data->block[1], data->block[0]);
        else
            stream_write(&t, &p, &data->block[1], data->block[0]);
        return 0;
    default:
        return -EOPNOTSUPP;
    }
}

int sim_rdwr(struct sim_bus *bus, void *msgs_ptr, unsigned nmsgs)
{
    struct i2c_msg *msgs = msgs_ptr;
    if (!msgs || nmsgs == 0 || nmsgs > I2C_RDWR_IOCTL_MAX_MSGS)
        return -EINVAL;
    for (unsigned i = 0; i < nmsgs; i++) {
        struct i2c_msg *msg = &msgs[i];
        if (msg->flags & (I2C_M_TEN | I2C_M_RECV_LEN))
            return -EOPNOTSUPP; /* 10-bit addresses and SMBus-style length reads are not simulated */
        if (msg->addr > 0x7f || (msg->len && !msg->buf))
            return -EINVAL;
        struct sim_io t;
        int status = begin(&t, bus, msg->addr);
        if (status < 0)
            return status;
        if (t.dev->chip != CHIP_NONE) {
            status = msg->flags & I2C_M_RD ? sim_chip_read(&t, msg->buf, msg->len)
                                           : sim_chip_write(&t, msg->buf, msg->len);
            if (status < 0)
                return status;
            continue;
        }
        struct pointer p;
        if (msg->flags & I2C_M_RD) {
            p = load_pointer(&t);
            stream_read(&t, &p, msg->buf, msg->len);
        } else if (msg->len > 0) {
            /* The first byte written selects the register, the rest go into it. */
            p = (struct pointer){msg->buf[0], 0};
            stream_write(&t, &p, msg->buf + 1, msg->len - 1);
        } else {
            continue; /* a zero-length write only probes the address */
        }
        store_pointer(&t, p);
    }
    return (int)nmsgs;
}
