/*
 * QEMU TCG plugin: counts executed guest instructions.
 *
 * Written for the plugin API version 1 of QEMU 7.2. Debian ships no qemu-plugin.h, so the handful of types and
 * functions used here are declared below; QEMU resolves them from its own executable when it loads the plugin.
 *
 * Every translated instruction gets an inline "add 1 to a 64-bit counter" op, so the count is exact even when a
 * translation block is left early (exception, semihosting call). Optionally two guest addresses can be given:
 *     -plugin insn_count_plugin.so,begin=0x1234,end=0x1240
 * Each execution of the instruction at `begin` opens a region, the next execution of `end` closes it, and the
 * instructions executed in between (callees included) are summed over all regions.
 *
 * Output (through qemu_plugin_outs, i.e. QEMU's log: run with `-d plugin -D logfile`), at exit:
 *     insn_count total=<n>
 *     insn_count regions=<k> region_total=<n> region_first=<n> region_min=<n> region_max=<n>   (only with begin/end)
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the subset of QEMU's plugin API (include/qemu/qemu-plugin.h, version 1) used here ---- */
typedef uint64_t qemu_plugin_id_t;

typedef struct {
    const char *target_name;
    struct {
        int min;
        int cur;
    } version;
    bool system_emulation;
    union {
        struct {
            int smp_vcpus;
            int max_vcpus;
        } system;
    };
} qemu_info_t;

struct qemu_plugin_tb;
struct qemu_plugin_insn;

enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op,
                                                void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);

#define EXPORT __attribute__((visibility("default")))

EXPORT int qemu_plugin_version = 1;

/* ---- state (the boards this is used for have a single vCPU) ---- */
static uint64_t insn_total;

static bool have_region;
static uint64_t region_begin_addr, region_end_addr;
static bool region_open;
static uint64_t region_start, region_count, region_sum, region_first, region_min, region_max;

static void on_begin(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    region_open = true;
    region_start = insn_total;
}

static void on_end(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    if (!region_open) {
        return;
    }
    uint64_t n = insn_total - region_start;
    region_open = false;
    if (region_count == 0) {
        region_first = region_min = region_max = n;
    } else {
        if (n < region_min) region_min = n;
        if (n > region_max) region_max = n;
    }
    region_count++;
    region_sum += n;
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &insn_total, 1);
        if (have_region) {
            uint64_t pc = qemu_plugin_insn_vaddr(insn);
            if (pc == region_begin_addr) {
                qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
            }
            if (pc == region_end_addr) {
                qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
            }
        }
    }
}

static void on_plugin_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    char line[256];
    snprintf(line, sizeof line, "insn_count total=%" PRIu64 "\n", insn_total);
    qemu_plugin_outs(line);
    if (have_region) {
        snprintf(line, sizeof line,
                 "insn_count regions=%" PRIu64 " region_total=%" PRIu64 " region_first=%" PRIu64
                 " region_min=%" PRIu64 " region_max=%" PRIu64 "\n",
                 region_count, region_sum, region_first, region_min, region_max);
        qemu_plugin_outs(line);
    }
}

static bool parse_addr(const char *arg, const char *key, uint64_t *out)
{
    size_t len = strlen(key);
    if (strncmp(arg, key, len) != 0 || arg[len] != '=') {
        return false;
    }
    char *end = NULL;
    *out = strtoull(arg + len + 1, &end, 0);
    return end != arg + len + 1 && *end == '\0';
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    bool got_begin = false, got_end = false;
    for (int i = 0; i < argc; i++) {
        if (parse_addr(argv[i], "begin", &region_begin_addr)) {
            got_begin = true;
        } else if (parse_addr(argv[i], "end", &region_end_addr)) {
            got_end = true;
        } else {
            fprintf(stderr, "insn_count_plugin: unknown argument '%s' (expected begin=ADDR,end=ADDR)\n", argv[i]);
            return -1;
        }
    }
    if (got_begin != got_end) {
        fprintf(stderr, "insn_count_plugin: begin= and end= must be given together\n");
        return -1;
    }
    have_region = got_begin;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    qemu_plugin_register_atexit_cb(id, on_plugin_exit, NULL);
    return 0;
}
