/* Register values written by programs, shared by every process under one `simulate` run: `i2cset` in
 * one process, `i2cget` in the next must see the same device, as on hardware. A small text file
 * (`BUS ADDR SLOT HEXBYTES` per line) guarded by flock; `simulate` empties it when the model is
 * re-read, so written values go back to the model's. Without a state file (library used on its own)
 * the values live in this process only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "i2csim.h"

#define STATE_MAX (1 << 20)

static char state_path[4096];
static char *memory_state; /* fallback without a state file */

void sim_state_init(const char *path)
{
    if (path && *path && strlen(path) < sizeof(state_path))
        strcpy(state_path, path);
}

/* The whole state text (NUL-terminated, caller frees); fd stays open and locked when fd_out is given. */
static char *load(int lock, int *fd_out)
{
    *fd_out = -1;
    if (!state_path[0])
        return strdup(memory_state ? memory_state : "");
    int fd = sim_real_open(state_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return NULL;
    while (flock(fd, lock) < 0 && errno == EINTR)
        ;
    char *text = malloc(STATE_MAX + 1);
    size_t used = 0;
    ssize_t got;
    while (text && used < STATE_MAX && (got = pread(fd, text + used, STATE_MAX - used, (off_t)used)) != 0) {
        if (got < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        used += (size_t)got;
    }
    if (text)
        text[used] = '\0';
    *fd_out = fd;
    return text;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* The line for (bus, addr, slot) in text, or NULL. */
static char *find_line(char *text, int bus, int addr, int slot)
{
    char prefix[64];
    int len = snprintf(prefix, sizeof(prefix), "%d %d %d ", bus, addr, slot);
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, prefix, (size_t)len) == 0)
            return line;
    return NULL;
}

int sim_state_get(int bus, int addr, int slot, uint8_t *out, int cap)
{
    int fd;
    char *text = load(LOCK_SH, &fd);
    int len = -1;
    char *line = text ? find_line(text, bus, addr, slot) : NULL;
    if (line) {
        line[strcspn(line, "\n")] = '\0';
        char *hex = strrchr(line, ' ') + 1;
        len = 0;
        while (len < cap && hexval(hex[0]) >= 0 && hexval(hex[1]) >= 0) {
            out[len++] = (uint8_t)(hexval(hex[0]) << 4 | hexval(hex[1]));
            hex += 2;
        }
    }
    free(text);
    if (fd >= 0)
        sim_real_close(fd); /* releases the lock */
    return len;
}

void sim_state_put(int bus, int addr, int slot, const uint8_t *bytes, int len)
{
    int fd;
    char *text = load(LOCK_EX, &fd);
    if (!text) {
        if (fd >= 0)
            sim_real_close(fd);
        return;
    }
    size_t cap = strlen(text) + 64 + 2 * (size_t)len + 2;
    char *out = malloc(cap);
    if (out) {
        char *line = find_line(text, bus, addr, slot);
        size_t pos = 0;
        if (line) { /* drop the old line, keep the rest in order */
            char *end = strchr(line, '\n');
            end = end ? end + 1 : line + strlen(line);
            memcpy(out, text, (size_t)(line - text));
            pos = (size_t)(line - text);
            strcpy(out + pos, end);
            pos += strlen(end);
        } else {
            strcpy(out, text);
            pos = strlen(text);
        }
        pos += (size_t)snprintf(out + pos, cap - pos, "%d %d %d ", bus, addr, slot);
        for (int i = 0; i < len; i++)
            pos += (size_t)snprintf(out + pos, cap - pos, "%02x", bytes[i]);
        out[pos++] = '\n';
        out[pos] = '\0';
        if (fd >= 0) {
            /* Rewritten in place under the lock: readers hold the shared lock, so never see it half done. */
            if (ftruncate(fd, 0) == 0) {
                size_t done = 0;
                while (done < pos) {
                    ssize_t put = pwrite(fd, out + done, pos - done, (off_t)done);
                    if (put < 0 && errno == EINTR)
                        continue;
                    if (put <= 0)
                        break;
                    done += (size_t)put;
                }
            }
            free(out);
        } else {
            free(memory_state);
            memory_state = out;
        }
    }
    free(text);
    if (fd >= 0)
        sim_real_close(fd);
}
