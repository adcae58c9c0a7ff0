// SPDX-License-Identifier: GPL-2.0
/*
 * smctrace lab: make Debian 6.1's soft-RoCE (rdma_rxe) usable by SMC-R, without rebuilding
 * the stock module. Two rxe bugs of 6.1, fixed upstream before 6.12, break SMC-R:
 *
 * 1. rxe_qp_to_attr() (behind ib_query_qp) never fills attr->cur_qp_state, so SMC's
 *    smc_link_sendable() never sees the link in RTS and the connect hangs in
 *    smc_wr_drain_cq(). A kretprobe copies qp_state into cur_qp_state when it returns.
 * 2. rxe_req_notify_cq() stores the flags & IB_CQ_SOLICITED_MASK; SMC asks for both bits
 *    (value 3), which rxe_cq_post() then matches neither as NEXT_COMP nor as SOLICITED, so
 *    SMC never gets a completion event. A kprobe rewrites a request for both bits into
 *    IB_CQ_NEXT_COMP (a superset: every completion notifies) before the function runs.
 *
 * Load it after rdma_rxe (the probes need its symbols); unloading removes the probes.
 * Only for the lab's guests: it is built against Debian's linux-headers of the guest kernel.
 */
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/ptrace.h>
#include <rdma/ib_verbs.h>

struct qp_to_attr_data {
	struct ib_qp_attr *attr;
};

/* int rxe_qp_to_attr(struct rxe_qp *qp, struct ib_qp_attr *attr, int mask) */
static int qp_to_attr_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct qp_to_attr_data *d = (struct qp_to_attr_data *)ri->data;

	d->attr = (struct ib_qp_attr *)regs_get_kernel_argument(regs, 1);
	return 0;
}

static int qp_to_attr_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct qp_to_attr_data *d = (struct qp_to_attr_data *)ri->data;

	if (d->attr)
		d->attr->cur_qp_state = d->attr->qp_state;
	return 0;
}

static struct kretprobe qp_to_attr_probe = {
	.kp.symbol_name = "rxe_qp_to_attr",
	.entry_handler = qp_to_attr_entry,
	.handler = qp_to_attr_ret,
	.data_size = sizeof(struct qp_to_attr_data),
	.maxactive = 64,
};

/* static int rxe_req_notify_cq(struct ib_cq *ibcq, enum ib_cq_notify_flags flags) */
static int notify_cq_pre(struct kprobe *p, struct pt_regs *regs)
{
	unsigned long flags = regs->si;

	if ((flags & IB_CQ_SOLICITED_MASK) == IB_CQ_SOLICITED_MASK)
		regs->si = (flags & ~(unsigned long)IB_CQ_SOLICITED_MASK) | IB_CQ_NEXT_COMP;
	return 0;
}

static struct kprobe notify_cq_probe = {
	.symbol_name = "rxe_req_notify_cq",
	.pre_handler = notify_cq_pre,
};

static int __init rxe_fix_init(void)
{
	int err;

	err = register_kretprobe(&qp_to_attr_probe);
	if (err) {
		pr_err("smctrace_rxe_fix: kretprobe on rxe_qp_to_attr: %d (is rdma_rxe loaded?)\n", err);
		return err;
	}
	err = register_kprobe(&notify_cq_probe);
	if (err) {
		pr_err("smctrace_rxe_fix: kprobe on rxe_req_notify_cq: %d\n", err);
		unregister_kretprobe(&qp_to_attr_probe);
		return err;
	}
	pr_info("smctrace_rxe_fix: rxe_qp_to_attr and rxe_req_notify_cq patched by probes\n");
	return 0;
}

static void __exit rxe_fix_exit(void)
{
	unregister_kprobe(&notify_cq_probe);
	unregister_kretprobe(&qp_to_attr_probe);
}

module_init(rxe_fix_init);
module_exit(rxe_fix_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("smctrace lab: rdma_rxe fixes for SMC-R on Linux 6.1 (probes, no rebuild of rxe)");
