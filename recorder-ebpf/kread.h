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

#endif /* SMCTRACE_KREAD_H */
