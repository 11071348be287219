/* Reads the compiled device model: a flat, line-oriented text file written by `edge-metrics simulate`
 * (src/edge_metrics/simulate/compile.py documents the format). The YAML was validated there, so errors
 * here mean a mismatched simulator build and are reported by line, not explained.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "i2csim.h"

struct cursor {
    char *p;
    int ok;
};

static char *next_token(struct cursor *c)
{
    while (*c->p == ' ' || *c->p == '\t')
        c->p++;
    if (*c->p == '\0' || *c->p == '\n') {
        c->ok = 0;
        return NULL;
    }
    char *start = c->p;
    while (*c->p && *c->p != ' ' && *c->p != '\t' && *c->p != '\n')
        c->p++;
    if (*c->p)
        *c->p++ = '\0';
    return start;
}

static int64_t next_int(struct cursor *c)
{
    char *token = next_token(c);
    if (!token)
        return 0;
    char *end;
    errno = 0;
    long long value = strtoll(token, &end, 0);
    if (errno || *end)
        c->ok = 0;
    return value;
}

static void parse_spec(struct cursor *c, struct sim_spec *spec)
{
    char *name = next_token(c);
    if (!name)
        return;
    memset(spec, 0, sizeof(*spec));
    if (strcmp(name, "const") == 0) {
        spec->func = FUNC_CONST;
        spec->a = next_int(c);
    } else if (strcmp(name, "seq") == 0 || strcmp(name, "bytes") == 0) {
        spec->func = name[0] == 's' ? FUNC_SEQ : FUNC_BYTES;
        if (spec->func == FUNC_SEQ)
            spec->period_ms = next_int(c);
        spec->n = (int)next_int(c);
        if (spec->n <= 0 || spec->n > 100000 || (spec->func == FUNC_SEQ && spec->period_ms <= 0)) {
            c->ok = 0;
            return;
        }
        spec->values = calloc((size_t)spec->n, sizeof(int64_t));
        if (!spec->values) {
            c->ok = 0;
            return;
        }
        for (int i = 0; i < spec->n; i++)
            spec->values[i] = next_int(c);
    } else if (strcmp(name, "ramp") == 0 || strcmp(name, "sine") == 0) {
        spec->func = name[0] == 'r' ? FUNC_RAMP : FUNC_SINE;
        spec->period_ms = next_int(c);
        spec->a = next_int(c);
        spec->b = next_int(c);
        if (spec->period_ms <= 0)
            c->ok = 0;
    } else {
        c->ok = 0;
    }
}

struct sim_bus *sim_model_bus(struct sim_model *model, int number)
{
    for (int i = 0; model && i < model->nbuses; i++)
        if (model->buses[i].number == number)
            return &model->buses[i];
    return NULL;
}

static struct sim_device *find_device(struct sim_model *model, int bus, int64_t addr)
{
    struct sim_bus *b = sim_model_bus(model, bus);
    if (!b || addr < 0 || addr > 127)
        return NULL;
    return b->devices[addr];
}

static int parse_line(struct sim_model *model, char *line)
{
    struct cursor c = {line, 1};
    char *kind = next_token(&c);
    if (!kind || kind[0] == '#')
        return 1;
    if (strcmp(kind, "edge-i2c-sim") == 0)
        return next_int(&c) == 1 && c.ok;
    if (strcmp(kind, "source") == 0) {
        model->source_mtime_ns = next_int(&c);
        model->source_size = next_int(&c);
        while (*c.p == ' ')
            c.p++;
        size_t len = strcspn(c.p, "\n");
        if (len >= sizeof(model->source))
            return 0;
        memcpy(model->source, c.p, len);
        model->source[len] = '\0';
        return c.ok;
    }
    if (strcmp(kind, "bus") == 0) {
        struct sim_bus *grown = realloc(model->buses, sizeof(struct sim_bus) * (size_t)(model->nbuses + 1));
        if (!grown)
            return 0;
        model->buses = grown;
        struct sim_bus *bus = &model->buses[model->nbuses++];
        memset(bus, 0, sizeof(*bus));
        bus->number = (int)next_int(&c);
        bus->hung = (int)next_int(&c);
        bus->delay_us = next_int(&c);
        return c.ok;
    }
    if (strcmp(kind, "dev") == 0) {
        int number = (int)next_int(&c);
        int64_t addr = next_int(&c);
        struct sim_bus *bus = sim_model_bus(model, number);
        if (!c.ok || !bus || addr < 0 || addr > 127 || bus->devices[addr])
            return 0;
        struct sim_device *dev = calloc(1, sizeof(*dev));
        if (!dev)
            return 0;
        bus->devices[addr] = dev;
        dev->absent = (int)next_int(&c);
        dev->nack_ppm = (uint32_t)next_int(&c);
        dev->delay_us = next_int(&c);
        dev->writable = (int)next_int(&c);
        return c.ok;
    }
    if (strcmp(kind, "chip") == 0 || strcmp(kind, "input") == 0) {
        int number = (int)next_int(&c);
        int64_t addr = next_int(&c);
        struct sim_device *dev = find_device(model, number, addr);
        if (!c.ok || !dev)
            return 0;
        if (kind[0] == 'i') {
            int64_t index = next_int(&c);
            if (!c.ok || index < 0 || index >= SIM_CHIP_INPUTS)
                return 0;
            parse_spec(&c, &dev->inputs[index]);
            return c.ok;
        }
        static const char *const chips[] = {"", "bme280", "sht3x", "ina219", "ads1115", "tmp102"};
        static const char *const faults[] = {"none", "wrong_id", "stuck_busy", "bad_crc"};
        char *chip = next_token(&c), *fault = next_token(&c);
        for (int i = 1; chip && i < (int)(sizeof(chips) / sizeof(chips[0])); i++)
            if (strcmp(chip, chips[i]) == 0)
                dev->chip = i;
        for (int i = 1; fault && i < (int)(sizeof(faults) / sizeof(faults[0])); i++)
            if (strcmp(fault, faults[i]) == 0)
                dev->fault = i;
        return c.ok && dev->chip != CHIP_NONE;
    }
    if (strcmp(kind, "reg") == 0 || strcmp(kind, "case") == 0) {
        int number = (int)next_int(&c);
        int64_t addr = next_int(&c);
        int64_t regno = next_int(&c);
        struct sim_device *dev = find_device(model, number, addr);
        if (!c.ok || !dev || regno < 0 || regno >= SIM_REGS)
            return 0;
        struct sim_reg *reg = &dev->regs[regno];
        if (kind[0] == 'r') {
            char *size = next_token(&c);
            char *order = next_token(&c);
            if (!size || !order)
                return 0;
            reg->present = 1;
            reg->kind = strcmp(size, "word") == 0 ? KIND_WORD : strcmp(size, "block") == 0 ? KIND_BLOCK : KIND_BYTE;
            reg->big_endian = strcmp(order, "big") == 0;
            reg->writable = (int)next_int(&c);
            parse_spec(&c, &reg->spec);
            return c.ok;
        }
        struct sim_case *entry = calloc(1, sizeof(*entry));
        if (!entry || !reg->present)
            return free(entry), 0;
        entry->select_reg = (int)next_int(&c);
        entry->mask = next_int(&c);
        entry->key = next_int(&c);
        parse_spec(&c, &entry->spec);
        /* Append, so the first matching case in the model wins. */
        struct sim_case **tail = &reg->cases;
        while (*tail)
            tail = &(*tail)->next;
        *tail = entry;
        return c.ok && entry->select_reg >= 0 && entry->select_reg < SIM_REGS;
    }
    return 0;
}

struct sim_model *sim_model_load(const char *path, char *err, size_t errlen)
{
    int fd = sim_real_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    FILE *file = fdopen(fd, "r");
    if (!file) {
        sim_real_close(fd);
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    struct sim_model *model = calloc(1, sizeof(*model));
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, ok = model != NULL;
    while (ok && getline(&line, &cap, file) >= 0) {
        lineno++;
        if (!parse_line(model, line)) {
            snprintf(err, errlen, "%s:%d: malformed compiled model line (simulator library out of date?)",
                     path, lineno);
            ok = 0;
        }
    }
    free(line);
    fclose(file);
    if (ok && lineno == 0) {
        snprintf(err, errlen, "%s: empty compiled model", path);
        ok = 0;
    }
    if (!ok) {
        sim_model_free(model);
        return NULL;
    }
    return model;
}

static void free_spec(struct sim_spec *spec)
{
    free(spec->values);
}

void sim_model_free(struct sim_model *model)
{
    if (!model)
        return;
    for (int i = 0; i < model->nbuses; i++) {
        for (int a = 0; a < 128; a++) {
            struct sim_device *dev = model->buses[i].devices[a];
            if (!dev)
                continue;
            for (int k = 0; k < SIM_CHIP_INPUTS; k++)
                free_spec(&dev->inputs[k]);
            for (int r = 0; r < SIM_REGS; r++) {
                free_spec(&dev->regs[r].spec);
                for (struct sim_case *entry = dev->regs[r].cases, *next; entry; entry = next) {
                    next = entry->next;
                    free_spec(&entry->spec);
                    free(entry);
                }
            }
            free(dev);
        }
    }
    free(model->buses);
    free(model);
}
