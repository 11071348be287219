/* Chip models: what the datasheets of the catalogue's sensors (scripts/sensors/) say the chip does on the
 * wire, so that a script's register reads, byte order, calibration, polling and CRC checks meet the real
 * thing. A model's inputs (simulate/chips.py names them) are what the chip measures (raw ADC codes, or
 * voltages in microvolts, or millidegrees) and its calibration words; time-varying like any value.
 *
 * State (pointer, written registers, a measurement in progress and its results) lives in one state slot per
 * device, shared by every process of a `simulate` run as i2cset and i2cget are separate processes on a
 * board too; it is read, changed and written back within one transfer.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "i2csim.h"

struct chip_state {
    uint8_t magic;            /* 0: never used since the model was loaded: the chip's power-on state */
    uint8_t pointer;
    uint8_t busy;             /* a measurement started and its results are not out yet */
    uint8_t ready;            /* results readable (SHT3x: until read once) */
    uint8_t reg8[4];          /* BME280 ctrl_hum, ctrl_meas, config, latched ctrl_hum */
    uint16_t reg16[4];        /* INA219 config, calibration, previous calibration; ADS1115 config; TMP102 */
    int64_t started_ms;       /* when the measurement (or calibration, or mode change) began */
    int64_t cleared_ms;       /* INA219: when CNVR was last cleared */
    int32_t result[4];        /* results of the last finished measurement */
    int32_t pending[4];       /* results of the measurement in progress */
    uint16_t command;         /* SHT3x: the last command */
};

#define STATE_MAGIC 0x5a

static void load(const struct sim_io *io, struct chip_state *st)
{
    uint8_t bytes[sizeof(*st)];
    memset(st, 0, sizeof(*st));
    if (sim_state_get(io->bus->number, io->addr, SIM_CHIP_SLOT, bytes, (int)sizeof(bytes)) == (int)sizeof(bytes))
        memcpy(st, bytes, sizeof(*st));
    if (st->magic != STATE_MAGIC)
        memset(st, 0, sizeof(*st));
}

static void save(const struct sim_io *io, struct chip_state *st)
{
    st->magic = STATE_MAGIC;
    sim_state_put(io->bus->number, io->addr, SIM_CHIP_SLOT, (const uint8_t *)st, (int)sizeof(*st));
}

static int64_t input(const struct sim_io *io, int index)
{
    return sim_eval(&io->dev->inputs[index], io->now_ms);
}

static int64_t clamp(int64_t value, int64_t low, int64_t high)
{
    return value < low ? low : value > high ? high : value;
}

/* Finish a measurement whose time is up (a stuck chip never does). */
static void settle(const struct sim_io *io, struct chip_state *st, int64_t duration_us)
{
    if (st->busy && io->dev->fault != FAULT_STUCK_BUSY && io->now_ms * 1000 >= st->started_ms * 1000 + duration_us) {
        memcpy(st->result, st->pending, sizeof(st->result));
        st->busy = 0;
        st->ready = 1;
    }
}

/* -- BME280 (Bosch BST-BME280-DS002): 0x88.. and 0xE1.. calibration, 0xF7..0xFE data, forced mode ----------- */

enum { BME_T, BME_P, BME_H, BME_DIG_T1, BME_DIG_P1 = BME_DIG_T1 + 3, BME_DIG_H1 = BME_DIG_P1 + 9 };

static const int bme_oversampling[8] = {0, 1, 2, 4, 8, 16, 16, 16};

/* Datasheet 9.1, maximum measurement time: 1.25 ms + 2.3 ms per temperature sample + (2.3 ms per sample
 * + 0.575 ms) for pressure and for humidity when they are measured. */
static int64_t bme_duration_us(const struct chip_state *st)
{
    int t = bme_oversampling[st->reg8[1] >> 5 & 7], p = bme_oversampling[st->reg8[1] >> 2 & 7];
    int h = bme_oversampling[st->reg8[3] & 7];
    return 1250 + 2300 * t + (p ? 2300 * p + 575 : 0) + (h ? 2300 * h + 575 : 0);
}

static uint8_t bme_read_reg(const struct sim_io *io, const struct chip_state *st, int reg)
{
    if (reg >= 0x88 && reg <= 0x9f) { /* dig_T1..dig_P9: 16-bit words, least significant byte first */
        uint16_t word = (uint16_t)input(io, BME_DIG_T1 + (reg - 0x88) / 2);
        return (uint8_t)((reg - 0x88) % 2 ? word >> 8 : word);
    }
    int64_t h4 = input(io, BME_DIG_H1 + 3), h5 = input(io, BME_DIG_H1 + 4);
    uint32_t t = (uint32_t)st->result[0], p = (uint32_t)st->result[1], h = (uint32_t)st->result[2];
    switch (reg) {
    case 0xa1: return (uint8_t)input(io, BME_DIG_H1);
    case 0xd0: return io->dev->fault == FAULT_WRONG_ID ? 0x58 : 0x60; /* 0x58: a BMP280, which has no humidity */
    case 0xe1: return (uint8_t)input(io, BME_DIG_H1 + 1);
    case 0xe2: return (uint8_t)(input(io, BME_DIG_H1 + 1) >> 8);
    case 0xe3: return (uint8_t)input(io, BME_DIG_H1 + 2);
    case 0xe4: return (uint8_t)(h4 >> 4);                          /* dig_H4 [11:4] */
    case 0xe5: return (uint8_t)((h4 & 0x0f) | (h5 & 0x0f) << 4);   /* dig_H4 [3:0], dig_H5 [3:0] */
    case 0xe6: return (uint8_t)(h5 >> 4);                          /* dig_H5 [11:4] */
    case 0xe7: return (uint8_t)input(io, BME_DIG_H1 + 5);
    case 0xf2: return st->reg8[0];
    case 0xf3: return st->busy ? 0x08 : 0x00;                      /* measuring[3] */
    case 0xf4: return st->busy || (st->reg8[1] & 3) == 3 ? st->reg8[1] : st->reg8[1] & 0xfc; /* forced: back to sleep */
    case 0xf5: return st->reg8[2];
    case 0xf7: return (uint8_t)(p >> 12);
    case 0xf8: return (uint8_t)(p >> 4);
    case 0xf9: return (uint8_t)((p & 0x0f) << 4);
    case 0xfa: return (uint8_t)(t >> 12);
    case 0xfb: return (uint8_t)(t >> 4);
    case 0xfc: return (uint8_t)((t & 0x0f) << 4);
    case 0xfd: return (uint8_t)(h >> 8);
    case 0xfe: return (uint8_t)h;
    default: return 0;
    }
}

static void bme_reset(struct chip_state *st)
{
    memset(st, 0, sizeof(*st));
    /* Data registers after reset: 0x80000 (temperature, pressure), 0x8000 (humidity), as when skipped. */
    st->result[0] = st->result[1] = 0x80000;
    st->result[2] = 0x8000;
}

static void bme_start(const struct sim_io *io, struct chip_state *st)
{
    st->reg8[3] = st->reg8[0] & 7; /* ctrl_hum takes effect with the write to ctrl_meas (datasheet 5.4.3) */
    int t = st->reg8[1] >> 5 & 7, p = st->reg8[1] >> 2 & 7, h = st->reg8[3];
    st->pending[0] = t ? (int32_t)(input(io, BME_T) & 0xfffff) : 0x80000;
    st->pending[1] = p ? (int32_t)(input(io, BME_P) & 0xfffff) : 0x80000;
    st->pending[2] = h ? (int32_t)(input(io, BME_H) & 0xffff) : 0x8000;
    st->busy = 1;
    st->started_ms = io->now_ms;
}

static int bme280_write(const struct sim_io *io, struct chip_state *st, const uint8_t *buf, int len)
{
    if (len >= 1)
        st->pointer = buf[0];
    /* Writes are (register, value) pairs (datasheet 6.2.1), not an auto-incremented stream. */
    for (int i = 0; i + 1 < len; i += 2) {
        int reg = buf[i];
        uint8_t value = buf[i + 1];
        if (reg == 0xe0 && value == 0xb6) {
            bme_reset(st);
        } else if (reg == 0xf2) {
            st->reg8[0] = value & 7;
        } else if (reg == 0xf5) {
            st->reg8[2] = value & 0xfd;
        } else if (reg == 0xf4) {
            st->reg8[1] = value;
            if ((value & 3) != 0 && !st->busy)
                bme_start(io, st);
        }
    }
    return 0;
}

static int bme280_read(const struct sim_io *io, struct chip_state *st, uint8_t *buf, int len)
{
    if ((st->reg8[1] & 3) == 3 && !st->busy) /* normal mode: measuring continuously, data always fresh */
        bme_start(io, st), memcpy(st->result, st->pending, sizeof(st->result)), st->busy = 0;
    for (int i = 0; i < len; i++)
        buf[i] = bme_read_reg(io, st, st->pointer++);
    return 0;
}

/* -- SHT3x (Sensirion SHT3x-DIS): 16-bit commands, 6-byte results with CRC-8, NACK while measuring ------------ */

enum { SHT_T, SHT_RH };

static uint8_t sim_sht3x_crc(const uint8_t *data, int len)
{
    uint8_t crc = 0xff; /* polynomial 0x31 (x^8 + x^5 + x^4 + 1), initialisation 0xFF, datasheet 4.12 */
    for (int i = 0; i < len; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++)
            crc = (uint8_t)(crc & 0x80 ? crc << 1 ^ 0x31 : crc << 1);
    }
    return crc;
}

/* Maximum measurement durations of datasheet table 4 (single shot), in microseconds. */
static int64_t sht_duration_us(uint16_t command)
{
    switch (command) {
    case 0x2400: case 0x2c06: return 15000; /* high repeatability */
    case 0x240b: case 0x2c0d: return 6000;  /* medium */
    default: return 4000;                   /* low: 0x2416, 0x2c10 */
    }
}

static int sht3x_write(const struct sim_io *io, struct chip_state *st, const uint8_t *buf, int len)
{
    if (len < 2)
        return 0; /* half a command: ignored */
    if (st->busy)
        return -ENXIO; /* while measuring the chip acknowledges nothing */
    uint16_t command = (uint16_t)(buf[0] << 8 | buf[1]);
    st->command = command;
    st->ready = 0;
    switch (command) {
    case 0x2400: case 0x240b: case 0x2416: case 0x2c06: case 0x2c0d: case 0x2c10:
        st->pending[0] = (int32_t)(input(io, SHT_T) & 0xffff);
        st->pending[1] = (int32_t)(input(io, SHT_RH) & 0xffff);
        st->busy = 1;
        st->started_ms = io->now_ms;
        break;
    case 0x30a2: /* soft reset */
        memset(st, 0, sizeof(*st));
        break;
    default: /* status (0xF32D) and the rest: answered or ignored at the read */
        break;
    }
    return 0;
}

static int sht3x_read(const struct sim_io *io, struct chip_state *st, uint8_t *buf, int len)
{
    uint8_t out[6];
    int n = 0;
    if (st->busy && (st->command & 0xff00) == 0x2c00) {
        /* Clock stretching: the chip holds SCL until the measurement is done. */
        int64_t left_us = st->started_ms * 1000 + sht_duration_us(st->command) - io->now_ms * 1000;
        if (io->dev->fault == FAULT_STUCK_BUSY)
            return -ETIMEDOUT; /* the adapter gives up on a clock held low */
        if (left_us > 0) {
            struct timespec ts = {0, (long)left_us * 1000};
            nanosleep(&ts, NULL);
        }
        memcpy(st->result, st->pending, sizeof(st->result));
        st->busy = 0;
        st->ready = 1;
    }
    if (st->command == 0xf32d) {
        out[0] = 0x80, out[1] = 0x10; /* alert pending, reset detected: the power-on status */
        out[2] = sim_sht3x_crc(out, 2);
        n = 3;
    } else {
        if (!st->ready)
            return -ENXIO; /* measuring, or nothing measured: the read header is not acknowledged */
        for (int i = 0; i < 2; i++) {
            out[3 * i] = (uint8_t)(st->result[i] >> 8);
            out[3 * i + 1] = (uint8_t)st->result[i];
            out[3 * i + 2] = sim_sht3x_crc(&out[3 * i], 2);
        }
        if (io->dev->fault == FAULT_BAD_CRC)
            out[2] ^= 0x01; /* one bit flipped on the wire */
        n = 6;
        st->ready = 0; /* a result is read once */
    }
    for (int i = 0; i < len; i++)
        buf[i] = i < n ? out[i] : 0xff; /* reading on past the data: the bus floats high */
    return 0;
}

/* -- INA219 (TI SBOS448): shunt and bus voltage, current and power from the calibration register -------------- */

enum { INA_SHUNT_UV, INA_BUS_MV };
enum { INA_CONFIG, INA_CAL, INA_OLD_CAL };
#define INA_CONVERSION_US 1000 /* 12-bit shunt and bus conversions (532 us each, datasheet table 5), rounded up */

struct ina_values {
    int16_t shunt;
    uint16_t bus;             /* the register: BD[15:3], CNVR[1], OVF[0] */
    uint16_t power;
    int16_t current;
};

static struct ina_values ina_measure(const struct sim_io *io, const struct chip_state *st)
{
    struct ina_values v;
    uint16_t config = st->reg16[INA_CONFIG];
    int pga = config >> 11 & 3;
    int64_t range = 4000LL << pga; /* +-40 mV at /1, doubling to +-320 mV at /8, in 10 uV steps */
    int64_t uv = input(io, INA_SHUNT_UV);
    int64_t shunt = clamp(uv >= 0 ? (uv + 5) / 10 : (uv - 5) / 10, -range, range);
    int64_t full_scale_mv = config & 0x2000 ? 32000 : 16000;
    int64_t bd = clamp(input(io, INA_BUS_MV), 0, full_scale_mv) / 4;
    /* The calibration written takes effect with the next conversion. */
    int settled = io->now_ms * 1000 >= st->started_ms * 1000 + INA_CONVERSION_US;
    int64_t cal = settled ? st->reg16[INA_CAL] : st->reg16[INA_OLD_CAL];
    int64_t current = shunt * cal / 4096; /* datasheet equation 4, truncated */
    int64_t power = (current < 0 ? -current : current) * bd / 5000; /* equation 5 */
    int overflow = current > 32767 || current < -32768 || power > 65535;
    int stuck = io->dev->fault == FAULT_STUCK_BUSY;
    int cnvr = !stuck && settled && io->now_ms * 1000 >= st->cleared_ms * 1000 + INA_CONVERSION_US;
    v.shunt = (int16_t)shunt;
    v.bus = (uint16_t)(bd << 3 | cnvr << 1 | overflow);
    v.current = (int16_t)clamp(current, -32768, 32767);
    v.power = (uint16_t)clamp(power, 0, 65535);
    return v;
}

static void ina_reset(struct chip_state *st)
{
    memset(st, 0, sizeof(*st));
    st->reg16[INA_CONFIG] = 0x399f;
}

static int ina219_write(const struct sim_io *io, struct chip_state *st, const uint8_t *buf, int len)
{
    if (len >= 1)
        st->pointer = buf[0];
    if (len < 3)
        return 0; /* a pointer write only */
    uint16_t value = (uint16_t)(buf[1] << 8 | buf[2]); /* most significant byte first */
    if (st->pointer == 0x00) {
        if (value & 0x8000) {
            ina_reset(st);
        } else {
            st->reg16[INA_CONFIG] = value;
            st->cleared_ms = io->now_ms; /* a config write clears CNVR */
        }
    } else if (st->pointer == 0x05) {
        st->reg16[INA_OLD_CAL] = st->reg16[INA_CAL];
        st->reg16[INA_CAL] = value & 0xfffe; /* bit 0 is not used */
        st->started_ms = io->now_ms;
    }
    return 0;
}

static int ina219_read(const struct sim_io *io, struct chip_state *st, uint8_t *buf, int len)
{
    /* The pointer stays where it was written: repeated reads return the same register. */
    struct ina_values v = ina_measure(io, st);
    uint16_t word;
    switch (st->pointer) {
    case 0x00: word = st->reg16[INA_CONFIG]; break;
    case 0x01: word = (uint16_t)v.shunt; break;
    case 0x02: word = v.bus; break;
    case 0x03: word = v.power; st->cleared_ms = io->now_ms; break; /* reading power clears CNVR */
    case 0x04: word = (uint16_t)v.current; break;
    case 0x05: word = st->reg16[INA_CAL]; break;
    default: word = 0; break;
    }
    for (int i = 0; i < len; i++)
        buf[i] = (uint8_t)(i % 2 ? word : word >> 8);
    return 0;
}

/* -- ADS1115 (TI SBAS444): single-shot conversions started by OS, polled on the same bit ---------------------- */

enum { ADS_AIN0_UV };
enum { ADS_CONFIG = 1, ADS_LO, ADS_HI }; /* reg16[] index = register pointer */
static const int64_t ads_full_scale_uv[8] = {6144000, 4096000, 2048000, 1024000, 512000, 256000, 256000, 256000};
static const int64_t ads_rates[8] = {8, 16, 32, 64, 128, 250, 475, 860};

static int64_t ads_input_uv(const struct sim_io *io, int mux)
{
    static const int positive[8] = {0, 0, 1, 2, 0, 1, 2, 3}, negative[8] = {1, 3, 3, 3, -1, -1, -1, -1};
    int64_t value = input(io, ADS_AIN0_UV + positive[mux]);
    return negative[mux] < 0 ? value : value - input(io, ADS_AIN0_UV + negative[mux]);
}

static int32_t ads_code(const struct sim_io *io, uint16_t config)
{
    int64_t fsr = ads_full_scale_uv[config >> 9 & 7];
    return (int32_t)clamp(ads_input_uv(io, config >> 12 & 7) * 32768 / fsr, -32768, 32767);
}

static int64_t ads_duration_us(uint16_t config)
{
    /* One conversion period, plus the 10 % the internal oscillator may run slow (datasheet 7.5). */
    return 1100000 / ads_rates[config >> 5 & 7];
}

static void ads_reset(struct chip_state *st)
{
    memset(st, 0, sizeof(*st));
    st->reg16[ADS_CONFIG] = 0x8583 & 0x7fff;
    st->reg16[ADS_LO] = 0x8000;
    st->reg16[ADS_HI] = 0x7fff;
}

static int ads1115_write(const struct sim_io *io, struct chip_state *st, const uint8_t *buf, int len)
{
    if (len >= 1)
        st->pointer = buf[0] & 3;
    if (len < 3)
        return 0;
    uint16_t value = (uint16_t)(buf[1] << 8 | buf[2]);
    if (st->pointer == 0x01) {
        st->reg16[ADS_CONFIG] = value & 0x7fff; /* OS is a command, not stored */
        if ((value & 0x8000) && (value & 0x0100) && !st->busy) {
            st->pending[0] = ads_code(io, value);
            st->busy = 1;
            st->started_ms = io->now_ms;
        }
    } else if (st->pointer >= 0x02) {
        st->reg16[st->pointer] = value;
    }
    return 0;
}

static int ads1115_read(const struct sim_io *io, struct chip_state *st, uint8_t *buf, int len)
{
    uint16_t config = st->reg16[ADS_CONFIG];
    uint16_t word;
    if (st->pointer == 0x00)
        word = (uint16_t)(config & 0x0100 ? st->result[0] : ads_code(io, config)); /* continuous: always fresh */
    else if (st->pointer == 0x01)
        word = (uint16_t)(config | (st->busy ? 0 : 0x8000)); /* OS reads 1 when no conversion is running */
    else
        word = st->reg16[st->pointer];
    for (int i = 0; i < len; i++)
        buf[i] = (uint8_t)(i % 2 ? word : word >> 8);
    return 0;
}

/* -- TMP102 (TI SBOS397): 12-bit or 13-bit (EM) two's complement, 0.0625 degC per bit ------------------------- */

enum { TMP_MILLICELSIUS };
enum { TMP_FORMAT_EM, TMP_CONFIG, TMP_LOW, TMP_HIGH }; /* reg16[] index = register pointer */
static const int64_t tmp_period_ms[4] = {4000, 1000, 250, 125}; /* CR1:CR0 = 0.25, 1, 4, 8 Hz */

static void tmp_reset(struct chip_state *st)
{
    memset(st, 0, sizeof(*st));
    st->reg16[TMP_CONFIG] = 0x60a0;
    st->reg16[TMP_LOW] = 0x4b00;
    st->reg16[TMP_HIGH] = 0x5000;
}

static uint16_t tmp_temperature(const struct sim_io *io, const struct chip_state *st)
{
    int64_t mc = input(io, TMP_MILLICELSIUS);
    int64_t code = mc >= 0 ? mc * 16 / 1000 : -((-mc * 16 + 999) / 1000); /* floor to 1/16 degC */
    /* The format of a reading follows EM as it was when that conversion ran. */
    if (st->reg16[TMP_FORMAT_EM])
        return (uint16_t)(clamp(code, -4096, 4095) << 3 | 1);
    return (uint16_t)(clamp(code, -2048, 2047) << 4);
}

static int tmp102_write(const struct sim_io *io, struct chip_state *st, const uint8_t *buf, int len)
{
    if (len >= 1)
        st->pointer = buf[0] & 3;
    if (len < 3)
        return 0;
    uint16_t value = (uint16_t)(buf[1] << 8 | buf[2]);
    if (st->pointer == 0x01) {
        int was = st->reg16[TMP_CONFIG] & 0x10;
        /* R1:R0 read 11 and AL is the alert's state: neither takes writes. */
        st->reg16[TMP_CONFIG] = (uint16_t)((value & 0x1fd0) | 0x6000 | (st->reg16[TMP_CONFIG] & 0x0020));
        if ((value & 0x10) != was)
            st->started_ms = io->now_ms; /* the next conversion uses the new format */
    } else if (st->pointer >= 0x02) {
        st->reg16[st->pointer] = value;
    }
    return 0;
}

static int tmp102_read(const struct sim_io *io, struct chip_state *st, uint8_t *buf, int len)
{
    uint16_t config = st->reg16[TMP_CONFIG];
    int em = !!(config & 0x10);
    if (em != st->reg16[TMP_FORMAT_EM] && io->dev->fault != FAULT_STUCK_BUSY
        && io->now_ms >= st->started_ms + tmp_period_ms[config >> 6 & 3])
        st->reg16[TMP_FORMAT_EM] = (uint16_t)em;
    uint16_t word = st->pointer == 0x00 ? tmp_temperature(io, st) : st->reg16[st->pointer];
    for (int i = 0; i < len; i++)
        buf[i] = (uint8_t)(i % 2 ? word : word >> 8);
    return 0;
}

/* -- dispatch ------------------------------------------------------------------------------------------------ */

static void power_on(const struct sim_io *io, struct chip_state *st)
{
    if (st->magic == STATE_MAGIC)
        return;
    switch (io->dev->chip) {
    case CHIP_BME280: bme_reset(st); break;
    case CHIP_INA219: ina_reset(st); break;
    case CHIP_ADS1115: ads_reset(st); break;
    case CHIP_TMP102: tmp_reset(st); break;
    default: memset(st, 0, sizeof(*st)); break;
    }
    st->magic = STATE_MAGIC;
}

static void settle_chip(const struct sim_io *io, struct chip_state *st)
{
    switch (io->dev->chip) {
    case CHIP_BME280: settle(io, st, bme_duration_us(st)); break;
    case CHIP_SHT3X: settle(io, st, sht_duration_us(st->command)); break;
    case CHIP_ADS1115: settle(io, st, ads_duration_us(st->reg16[ADS_CONFIG])); break;
    default: break;
    }
}

/* One message to the chip: a write (len 0 only probes the address) or a read, on its state as saved. */
static int transfer(const struct sim_io *io, int reading, uint8_t *buf, int len)
{
    struct chip_state st;
    load(io, &st);
    power_on(io, &st);
    settle_chip(io, &st);
    int status = 0;
    if (reading || len > 0) {
        switch (io->dev->chip) {
        case CHIP_BME280: status = reading ? bme280_read(io, &st, buf, len) : bme280_write(io, &st, buf, len); break;
        case CHIP_SHT3X: status = reading ? sht3x_read(io, &st, buf, len) : sht3x_write(io, &st, buf, len); break;
        case CHIP_INA219: status = reading ? ina219_read(io, &st, buf, len) : ina219_write(io, &st, buf, len); break;
        case CHIP_ADS1115: status = reading ? ads1115_read(io, &st, buf, len) : ads1115_write(io, &st, buf, len); break;
        case CHIP_TMP102: status = reading ? tmp102_read(io, &st, buf, len) : tmp102_write(io, &st, buf, len); break;
        default: break;
        }
    }
    save(io, &st);
    return status;
}

int sim_chip_write(const struct sim_io *io, const uint8_t *buf, int len)
{
    return transfer(io, 0, (uint8_t *)buf, len); /* the write handlers take it as const */
}

int sim_chip_read(const struct sim_io *io, uint8_t *buf, int len)
{
    return transfer(io, 1, buf, len);
}
