/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reads of kernel memory at offsets userspace computed from the running kernel's
 * BTF (aya cannot relocate CO-RE accesses into module types such as struct
 * smc_sock). Shared by every program of the recorder; a failed read yields 0.
 */
#ifndef SMCTRACE_KREAD_H
#define SMCTRACE_KREAD_H

#define AT(base, off) ((const void *)((const char *)(base) + (off)))

static __always_inline __u64 rd_u64(const void *base, __u32 off)
{
	__u64 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), AT(base, off));
	return v;
}

static __always_inline __u32 rd_u32(const void *base, __u32 off)
{
	__u32 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), AT(base, off));
	return v;
}

static __always_inline __u16 rd_u16(const void *base, __u32 off)
{
	__u16 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), AT(base, off));
	return v;
}

static __always_inline __u8 rd_u8(const void *base, __u32 off)
{
	__u8 v = 0;

	bpf_probe_read_kernel(&v, sizeof(v), AT(base, off));
	return v;
}

static __always_inline const void *rd_ptr(const void *base, __u32 off)
{
	return (const void *)rd_u64(base, off);
}

/*
 * Fields of one struct that lie close together, copied with one
 * bpf_probe_read_kernel instead of one per field. lo is the lowest offset of
 * the fields, n the bytes up to the end of the highest; both come from the
 * frozen .rodata offsets, so the verifier knows them and every index below.
 * Callers fall back to rd_* when n > SPAN_MAX (a layout we did not expect).
 */
#define SPAN_MAX 40

struct span {
	__u8 b[SPAN_MAX];
	__u32 lo;
};

static __always_inline void span_read(struct span *sp, const void *base, __u32 lo, __u32 n)
{
	sp->lo = lo;
	if (n <= SPAN_MAX)
		bpf_probe_read_kernel(sp->b, n, AT(base, lo));
}

static __always_inline __u64 span_u64(const struct span *sp, __u32 off)
{
	__u32 r = off - sp->lo;
	__u64 v = 0;

	if (r <= SPAN_MAX - 8)
		__builtin_memcpy(&v, &sp->b[r], 8);
	return v;
}

static __always_inline __u32 span_u32(const struct span *sp, __u32 off)
{
	__u32 r = off - sp->lo;
	__u32 v = 0;

	if (r <= SPAN_MAX - 4)
		__builtin_memcpy(&v, &sp->b[r], 4);
	return v;
}

static __always_inline __u16 span_u16(const struct span *sp, __u32 off)
{
	__u32 r = off - sp->lo;
	__u16 v = 0;

	if (r <= SPAN_MAX - 2)
		__builtin_memcpy(&v, &sp->b[r], 2);
	return v;
}

static __always_inline __u8 span_u8(const struct span *sp, __u32 off)
{
	__u32 r = off - sp->lo;

	return r <= SPAN_MAX - 1 ? sp->b[r] : 0;
}

static __always_inline __u32 min_u32(__u32 a, __u32 b)
{
	return a < b ? a : b;
}

static __always_inline __u32 max_u32(__u32 a, __u32 b)
{
	return a > b ? a : b;
}

#endif /* SMCTRACE_KREAD_H */
