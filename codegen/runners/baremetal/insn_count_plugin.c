/*
 * QEMU TCG plugin: counts executed guest instructions and estimates Cortex-M4 cycles.
 *
 * Written for the plugin API version 1 of QEMU 7.2. Debian ships no qemu-plugin.h, so the handful of types and
 * functions used here are declared below; QEMU resolves them from its own executable when it loads the plugin.
 *
 * Every translated instruction gets two inline "add to a 64-bit counter" ops (one instruction; its estimated
 * cycles), so the counts are exact even when a translation block is left early (exception, semihosting call).
 * Optionally two guest addresses can be given:
 *     -plugin insn_count_plugin.so,begin=0x1234,end=0x1240[,each=1][,refill=2][,ws=0]
 * Each execution of the instruction at `begin` opens a region, the next execution of `end` closes it, and the
 * instructions executed in between (callees included) are summed over all regions; each=1 also prints every
 * region (a profiler moves the markers from kernel call to kernel call).
 *
 * ESTIMATED CYCLES (an estimate, not a timing: QEMU models no pipeline, bus or memory system). Each instruction is
 * classified at translation time from its bytes (qemu_plugin_insn_data; the Thumb-2 encodings of the classes
 * below) and charged the cycles of the Cortex-M4 Technical Reference Manual's instruction set summary (Arm
 * Cortex-M4 Processor TRM r0p1, ARM 100166_0001_00_en, section 3.3 "Instruction set summary", table
 * "Cortex-M4 instruction set summary"; the same table with the FPU instructions as TI SWCU192 table 3-25,
 * https://ti.com/document-viewer/lit/html/SWCU192), assuming zero-wait-state memory unless ws= is given:
 *   - single loads and stores (LDR/LDRB/LDRH/LDRSB/LDRSH/STR*, LDREX/STREX, PLD): 2; a load/store directly after
 *     another single load/store in the same block pipelines and costs 1 (TRM note: "neighboring load and store
 *     single instructions can pipeline their address and data phases"), except after a load whose destination is
 *     the next one's base or offset register, and after a store with a register offset;
 *   - LDRD/STRD 3 (1+N, N=2); LDM/STM/PUSH/POP 1+N (N registers); VLDR/VSTR 2; VLDM/VSTM/VPUSH/VPOP 1+N (words);
 *     VMOV of two core registers 2;
 *   - multiply and multiply-accumulate of every kind (MUL, MLA, MLS, SMULL/UMULL, SMLAL/UMLAL, SMLAD/SMLABB/SMUAD,
 *     SMMLA, ...) 1; SDIV/UDIV 12, the TRM's worst case of "2 to 12" (it depends on the operands);
 *   - VADD/VSUB/VMUL/VCVT/VABS/VNEG/VCMP/VMOV 1; VMLA/VMLS/VNMLA/VNMLS/VFMA/VFMS/VFNMA/VFNMS 3; VDIV 14; VSQRT 14;
 *   - branches and every other write to the PC: taken 1+P, not taken 1, where P (pipeline refill, "1 to 3
 *     depending on the alignment and width of the target instruction") is refill=, default 2. Unconditional
 *     ones (B, BL, BX, BLX, POP {..,pc}, LDR pc, MOV pc, TBB/TBH +1 for the table load) are charged when
 *     translated; whether a conditional one (B<c>, CBZ/CBNZ, a PC write inside an IT block) was taken is seen at
 *     the start of the next block executed: a block other than the fall-through means taken;
 *   - everything else (data processing, SIMD, saturation, IT, NOP, barriers, MRS/MSR) 1.
 * Flash wait states (ws=, a board's "flash_wait_states" in boards.json, default 0): a simple model that charges
 * ws more cycles per non-sequential instruction fetch from flash, i.e. per taken branch whose code lies below
 * 0x20000000 (the code region; sequential fetches are assumed hidden by the prefetch buffer).
 * Not modelled: register-dependency stalls, bus contention, the FPU's out-of-order completion, IT folding,
 * interrupts. Measured cost of the dynamic branch model: see tests/test_cycles.py.
 *
 * Output (through qemu_plugin_outs, i.e. QEMU's log: run with `-d plugin -D logfile`), at exit:
 *     insn_count total=<n>
 *     cycle_estimate total=<c> taken_branches=<t> not_taken_branches=<u>
 *     cycle_breakdown beyond_one_per_instruction loadstore=<c> branch=<c> divide=<c> fp=<c> other=<c>
 *     insn_count regions=<k> region_total=<n> region_first=<n> region_min=<n> region_max=<n>   (only with begin/end)
 *     cycle_estimate region_total=<c> region_first=<c> region_min=<c> region_max=<c>           (only with begin/end)
 *     insn_region <i> insn=<n> cycles=<c>                                                         (only with each=1)
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
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);

#define EXPORT __attribute__((visibility("default")))

EXPORT int qemu_plugin_version = 1;

/* ---- state (the boards this is used for have a single vCPU) ---- */
static uint64_t insn_total, cycle_total, taken_total, not_taken_total;

/* Where the cycles beyond one per instruction go (whole run): the kinds of `struct cls`, then branch refills. */
enum { EXTRA_OTHER, EXTRA_LOADSTORE, EXTRA_DIVIDE, EXTRA_FP, EXTRA_BRANCH, EXTRA_KINDS };
static uint64_t extra[EXTRA_KINDS];

static unsigned refill = 2;      /* P: pipeline refill cycles of a taken branch (TRM: 1 to 3) */
static unsigned wait_states = 0; /* flash wait states per non-sequential fetch from flash */

static bool have_region, print_each;
static uint64_t region_begin_addr, region_end_addr;
static bool region_open;
static uint64_t region_start, region_cstart, region_count, region_sum, region_first, region_min, region_max;
static uint64_t cregion_sum, cregion_first, cregion_min, cregion_max;
static uint64_t *each_insn, *each_cycles;
static size_t each_len, each_cap;

/* A conditional PC write ended the block that ran last: its fall-through address (0: none pending) and the cycles a
 * taken one costs more than a not-taken one. */
static uint64_t pending_fallthrough, pending_penalty;

struct tb_info {
    uint64_t vaddr;
    uint64_t cond_fallthrough; /* 0 unless the block ends in a conditional PC write */
    uint64_t penalty;          /* refill (+ wait states) if that branch is taken */
};

static void on_begin(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    region_open = true;
    region_start = insn_total;
    region_cstart = cycle_total;
}

static void on_end(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    if (!region_open) {
        return;
    }
    uint64_t n = insn_total - region_start, c = cycle_total - region_cstart;
    region_open = false;
    if (region_count == 0) {
        region_first = region_min = region_max = n;
        cregion_first = cregion_min = cregion_max = c;
    } else {
        if (n < region_min) region_min = n;
        if (n > region_max) region_max = n;
        if (c < cregion_min) cregion_min = c;
        if (c > cregion_max) cregion_max = c;
    }
    region_count++;
    region_sum += n;
    cregion_sum += c;
    if (print_each) {
        if (each_len == each_cap) {
            each_cap = each_cap ? 2 * each_cap : 256;
            each_insn = realloc(each_insn, each_cap * sizeof *each_insn);
            each_cycles = realloc(each_cycles, each_cap * sizeof *each_cycles);
            if (each_insn == NULL || each_cycles == NULL) {
                fprintf(stderr, "insn_count_plugin: out of memory for per-region counts\n");
                abort();
            }
        }
        each_insn[each_len] = n;
        each_cycles[each_len] = c;
        each_len++;
    }
}

/* At the start of every block: settle the conditional branch that ended the previous one, then note this one's. */
static void on_tb_exec(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    const struct tb_info *tb = userdata;
    if (pending_fallthrough != 0) {
        if (tb->vaddr != pending_fallthrough) {
            cycle_total += pending_penalty;
            extra[EXTRA_BRANCH] += pending_penalty;
            taken_total++;
        } else {
            not_taken_total++;
        }
    }
    pending_fallthrough = tb->cond_fallthrough;
    pending_penalty = tb->penalty;
}

/* ---- Thumb-2 classification (ARMv7-M Architecture Reference Manual, chapter A5 "Thumb instruction set
 * encoding"); `cls` describes one instruction for the cycle model above ---- */
struct cls {
    unsigned cost;     /* cycles when not pipelined, branch refill excluded */
    bool ls_single;    /* single load/store: may pipeline after another one */
    int load_rt;       /* register a single load writes (-1: none) */
    int rn, rm;        /* base and offset registers of a single load/store (-1: none) */
    bool store_regoff; /* a store with a register offset: nothing pipelines after it */
    bool pc_write;     /* a branch or another write to the PC */
    bool cond;         /* a conditional branch (B<c>, CBZ, CBNZ): taken or not is seen at run time */
    unsigned it_len;   /* an IT instruction: how many instructions its block holds */
    int kind;          /* EXTRA_*: what its cycles beyond one count as */
};

#define COST_DIV 12
#define COST_VDIV 14
#define COST_VSQRT 14
#define COST_VMAC 3

static int popcount16(unsigned v)
{
    return __builtin_popcount(v & 0xFFFFu);
}

static void ls(struct cls *c, bool load, int rt, int rn, int rm)
{
    c->cost = 2;
    c->kind = EXTRA_LOADSTORE;
    c->ls_single = true;
    c->load_rt = load ? rt : -1;
    c->rn = rn;
    c->rm = rm;
    c->store_regoff = !load && rm >= 0;
    if (load && rt == 15) {
        c->pc_write = true;
    }
}

static void classify16(unsigned hw, struct cls *c)
{
    if ((hw & 0xF800) == 0x4800) {                         /* LDR Rt, [PC, #imm] */
        ls(c, true, (hw >> 8) & 7, 15, -1);
    } else if ((hw & 0xF000) == 0x5000) {                  /* load/store, register offset */
        unsigned opb = (hw >> 9) & 7;
        ls(c, opb >= 3, hw & 7, (hw >> 3) & 7, (hw >> 6) & 7);
    } else if ((hw & 0xE000) == 0x6000 || (hw & 0xF000) == 0x8000) {  /* STR/LDR(B) imm, STRH/LDRH imm */
        ls(c, (hw >> 11) & 1, hw & 7, (hw >> 3) & 7, -1);
    } else if ((hw & 0xF000) == 0x9000) {                  /* STR/LDR SP-relative */
        ls(c, (hw >> 11) & 1, (hw >> 8) & 7, 13, -1);
    } else if ((hw & 0xFE00) == 0xB400) {                  /* PUSH */
        c->cost = 1 + popcount16(hw & 0x1FF);
        c->kind = EXTRA_LOADSTORE;
    } else if ((hw & 0xFE00) == 0xBC00) {                  /* POP */
        c->cost = 1 + popcount16(hw & 0x1FF);
        c->kind = EXTRA_LOADSTORE;
        c->pc_write = (hw >> 8) & 1;
    } else if ((hw & 0xF000) == 0xC000) {                  /* STM/LDM */
        c->cost = 1 + popcount16(hw & 0xFF);
        c->kind = EXTRA_LOADSTORE;
    } else if ((hw & 0xF000) == 0xD000 && (hw & 0x0E00) != 0x0E00) {  /* B<c> (not UDF, SVC) */
        c->pc_write = c->cond = true;
    } else if ((hw & 0xF800) == 0xE000) {                  /* B */
        c->pc_write = true;
    } else if ((hw & 0xF500) == 0xB100) {                  /* CBZ, CBNZ */
        c->pc_write = c->cond = true;
    } else if ((hw & 0xFF00) == 0x4700) {                  /* BX, BLX (register) */
        c->pc_write = true;
    } else if ((hw & 0xFF00) == 0x4400 || (hw & 0xFF00) == 0x4600) {  /* ADD/MOV Rd, Rm, high registers */
        c->pc_write = ((hw & 7) | ((hw >> 4) & 8)) == 15;
    } else if ((hw & 0xFF00) == 0xBF00 && (hw & 0xF) != 0) {  /* IT */
        c->it_len = 4 - __builtin_ctz(hw & 0xF);
    }
}

static void classify_vfp(unsigned hw1, unsigned hw2, struct cls *c)
{
    if ((hw1 & 0x0E00) == 0x0C00) {                        /* extension register load/store, 64-bit moves */
        unsigned op = (hw1 >> 4) & 0x1F;
        c->kind = EXTRA_LOADSTORE;
        if ((op & 0x1E) == 0x04) {
            c->cost = 2;                                   /* VMOV two core registers <-> two S / one D */
        } else if ((op & 0x13) == 0x10 || (op & 0x13) == 0x11) {
            c->cost = 2;                                   /* VSTR, VLDR */
        } else {
            c->cost = 1 + (hw2 & 0xFF);                    /* VSTM/VLDM/VPUSH/VPOP: imm8 = words */
        }
    } else if ((hw1 & 0x0F00) == 0x0E00 && !(hw2 & 0x10)) { /* VFP data processing */
        unsigned opc1 = (hw1 >> 4) & 0xB, opc2 = hw1 & 0xF, opc3 = (hw2 >> 6) & 3;
        c->kind = EXTRA_FP;
        if (opc1 == 0x8) {
            c->cost = COST_VDIV;
        } else if (opc1 <= 0x1 || opc1 == 0x9 || opc1 == 0xA) {
            c->cost = COST_VMAC;                           /* VMLA/VMLS/VNMLA/VNMLS, VFNMA/VFNMS/VFMA/VFMS */
        } else if (opc1 == 0xB && opc2 == 1 && opc3 == 3) {
            c->cost = COST_VSQRT;
        }
    }
}

static void classify32(unsigned hw1, unsigned hw2, struct cls *c)
{
    if ((hw1 & 0xEC00) == 0xEC00) {                        /* coprocessor: the FPU */
        classify_vfp(hw1, hw2, c);
    } else if ((hw1 & 0xFE40) == 0xE800) {                 /* LDM/STM (PUSH.W, POP.W) */
        c->cost = 1 + popcount16(hw2);
        c->kind = EXTRA_LOADSTORE;
        c->pc_write = ((hw1 >> 4) & 1) && ((hw2 >> 15) & 1);
    } else if ((hw1 & 0xFE40) == 0xE840) {                 /* dual, exclusive, table branch */
        unsigned op1 = (hw1 >> 7) & 3, op2 = (hw1 >> 4) & 3, op3 = (hw2 >> 4) & 0xF;
        if (op1 == 1 && op2 == 1 && op3 <= 1) {            /* TBB, TBH: a load, then the branch */
            c->cost = 2;
            c->pc_write = true;
        } else if ((op1 == 0 && op2 <= 1) || (op1 == 1 && op2 == 1)) {
            ls(c, op2 & 1, hw2 >> 12, hw1 & 0xF, -1);     /* LDREX/STREX (B/H) */
            c->store_regoff = false;
        } else {
            c->cost = 3;                                   /* LDRD/STRD: 1 + N, N = 2 */
            c->kind = EXTRA_LOADSTORE;
        }
    } else if ((hw1 & 0xF800) == 0xF000 && (hw2 & 0x8000)) { /* branches and miscellaneous control */
        if ((hw2 & 0x5000) == 0x0000) {
            if (((hw1 >> 7) & 7) != 7) {
                c->pc_write = c->cond = true;              /* B<c>.W */
            } else if (hw1 == 0xF3BF && (hw2 & 0xFFF0) == 0x8F60) {
                c->cost = 1 + refill;                      /* ISB */
            }
        } else {
            c->pc_write = true;                            /* B.W, BL */
        }
    } else if ((hw1 & 0xFE00) == 0xF800) {                 /* single load/store, PLD/PLI */
        bool load = (hw1 >> 4) & 1;
        bool regoff = !((hw1 >> 7) & 1) && (hw1 & 0xF) != 15 && ((hw2 >> 6) & 0x3F) == 0;
        ls(c, load, hw2 >> 12, hw1 & 0xF, regoff ? (int)(hw2 & 0xF) : -1);
        if (load && (hw2 >> 12) == 15 && ((hw1 >> 5) & 3) != 2) {
            c->pc_write = false;                           /* PLD, PLI: byte-sized "loads" into PC are hints */
            c->load_rt = -1;
        }
    } else if ((hw1 & 0xFF80) == 0xFB80) {                 /* long multiply, long MAC, divide */
        unsigned op1 = (hw1 >> 4) & 7, op2 = (hw2 >> 4) & 0xF;
        if ((op1 == 1 || op1 == 3) && op2 == 0xF) {
            c->cost = COST_DIV;
            c->kind = EXTRA_DIVIDE;
        }
    }
    /* data processing (immediate, register, shifted register), multiply and MAC (0xFB00..): 1 */
}

static bool in_flash(uint64_t addr)
{
    return addr < 0x20000000u;
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    struct tb_info *info = calloc(1, sizeof *info);
    if (info == NULL) {
        fprintf(stderr, "insn_count_plugin: out of memory\n");
        abort();
    }
    info->vaddr = qemu_plugin_tb_vaddr(tb);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS, info);

    bool prev_ls = false, prev_store_regoff = false;
    int prev_load_rt = -1;
    unsigned it_left = 0;
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        size_t size = qemu_plugin_insn_size(insn);
        const uint8_t *b = qemu_plugin_insn_data(insn);
        struct cls c = {.cost = 1, .load_rt = -1, .rn = -1, .rm = -1};
        unsigned hw1 = b[0] | (b[1] << 8);
        if (size >= 4) {
            classify32(hw1, b[2] | (b[3] << 8), &c);
        } else {
            classify16(hw1, &c);
        }
        bool conditional = c.cond || it_left > 0;
        if (it_left > 0) {
            it_left--;
        }
        if (c.it_len) {
            it_left = c.it_len;
        }
        unsigned cost = c.cost;
        if (c.ls_single && prev_ls && !prev_store_regoff && (prev_load_rt < 0 || (prev_load_rt != c.rn &&
                                                                                 prev_load_rt != c.rm))) {
            cost = 1;
        }
        prev_ls = c.ls_single;
        prev_store_regoff = c.store_regoff;
        prev_load_rt = c.load_rt;
        uint64_t penalty = refill + (in_flash(pc) ? wait_states : 0);
        if (cost > 1) {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &extra[c.kind], cost - 1);
        }
        if (c.pc_write) {
            if (conditional) {
                info->cond_fallthrough = pc + size;        /* a PC write ends the block */
                info->penalty = penalty;
            } else {
                cost += penalty;
                qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &extra[EXTRA_BRANCH],
                                                           penalty);
            }
        }
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &insn_total, 1);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &cycle_total, cost);
        if (have_region) {
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
    snprintf(line, sizeof line, "cycle_estimate total=%" PRIu64 " taken_branches=%" PRIu64
             " not_taken_branches=%" PRIu64 "\n", cycle_total, taken_total, not_taken_total);
    qemu_plugin_outs(line);
    snprintf(line, sizeof line, "cycle_breakdown beyond_one_per_instruction loadstore=%" PRIu64 " branch=%" PRIu64
             " divide=%" PRIu64 " fp=%" PRIu64 " other=%" PRIu64 "\n", extra[EXTRA_LOADSTORE], extra[EXTRA_BRANCH],
             extra[EXTRA_DIVIDE], extra[EXTRA_FP], extra[EXTRA_OTHER]);
    qemu_plugin_outs(line);
    if (have_region) {
        snprintf(line, sizeof line,
                 "insn_count regions=%" PRIu64 " region_total=%" PRIu64 " region_first=%" PRIu64
                 " region_min=%" PRIu64 " region_max=%" PRIu64 "\n",
                 region_count, region_sum, region_first, region_min, region_max);
        qemu_plugin_outs(line);
        snprintf(line, sizeof line,
                 "cycle_estimate region_total=%" PRIu64 " region_first=%" PRIu64 " region_min=%" PRIu64
                 " region_max=%" PRIu64 "\n", cregion_sum, cregion_first, cregion_min, cregion_max);
        qemu_plugin_outs(line);
        for (size_t k = 0; k < each_len; k++) {
            snprintf(line, sizeof line, "insn_region %zu insn=%" PRIu64 " cycles=%" PRIu64 "\n", k, each_insn[k],
                     each_cycles[k]);
            qemu_plugin_outs(line);
        }
    }
}

static bool parse_num(const char *arg, const char *key, uint64_t *out)
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
    uint64_t v;
    for (int i = 0; i < argc; i++) {
        if (parse_num(argv[i], "begin", &region_begin_addr)) {
            got_begin = true;
        } else if (parse_num(argv[i], "end", &region_end_addr)) {
            got_end = true;
        } else if (parse_num(argv[i], "each", &v)) {
            print_each = v != 0;
        } else if (parse_num(argv[i], "refill", &v) && v >= 1 && v <= 3) {
            refill = (unsigned)v;
        } else if (parse_num(argv[i], "ws", &v) && v <= 15) {
            wait_states = (unsigned)v;
        } else {
            fprintf(stderr, "insn_count_plugin: bad argument '%s' (expected begin=ADDR,end=ADDR,each=0|1,"
                            "refill=1..3,ws=0..15)\n", argv[i]);
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

#ifdef INSN_COUNT_SELFTEST
/* The classifier alone, for tests/test_cycles.py: reads one instruction per line as its halfwords in hex
 * ("f8d1 3004" or "b510") and prints "cost ls_single pc_write cond it_len" (cost without the branch refill). */
int main(void)
{
    char line[64];
    while (fgets(line, sizeof line, stdin) != NULL) {
        unsigned hw1 = 0, hw2 = 0;
        int n = sscanf(line, "%x %x", &hw1, &hw2);
        struct cls c = {.cost = 1, .load_rt = -1, .rn = -1, .rm = -1};
        if (n == 2) {
            classify32(hw1, hw2, &c);
        } else if (n == 1) {
            classify16(hw1, &c);
        } else {
            continue;
        }
        printf("%u %d %d %d %u\n", c.cost, c.ls_single, c.pc_write, c.cond, c.it_len);
    }
    return 0;
}
#endif
