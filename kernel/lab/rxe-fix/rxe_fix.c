// SPDX-License-Identifier: GPL-2.0
/*
 * smctrace lab: make Debian 6.1's soft-RoCE (rdma_rxe) usable by SMC-R, without rebuilding
 * the stock module. Two rxe bugs of 6.1, fixed upstream before 6.12, break SMC-R:
 *
 * 1. rxe_query_qp() (behind ib_query_qp) never fills attr->cur_qp_state, so SMC's
 *    smc_link_sendable() never sees the link in RTS and the connect hangs in
 *    smc_wr_drain_cq(). Our query_qp copies qp_state into cur_qp_state after rxe's.
 * 2. rxe_req_notify_cq() stores the flags & IB_CQ_SOLICITED_MASK; SMC asks for both bits
 *    (value 3), which rxe_cq_post() then matches neither as NEXT_COMP nor as SOLICITED, so
 *    SMC never gets a completion event. Our req_notify_cq turns a request for both bits
 *    into IB_CQ_NEXT_COMP (a superset: every completion notifies) before calling rxe's.
 *
 * Why the ops table and not probes: ib_query_qp() and ib_req_notify_cq() call through
 * the copy of the driver's ops embedded in each struct ib_device, so swapping those two
 * pointers is enough. An earlier version used a kprobe/kretprobe; the kprobe core skips a
 * probe that fires while another kprobe handler runs on the same CPU, so with smc-record's
 * kprobes active, CQ notification requests made from softirq were lost and SMC-R stalled.
 *
 * The module is an ib_client: ib_core calls rxe_fix_add() for every device present at load
 * and every device registered later (so it may be loaded before or after `rdma link add`),
 * and rxe_fix_remove() when a device goes away or the module is unloaded; that puts the
 * original ops back. Only devices whose driver is rxe are touched.
 * Only for the lab's guests: it is built against Debian's linux-headers of the guest kernel.
 */
#include <linux/atomic.h>
#include <linux/delay.h>
#include <linux/module.h>
#include <linux/rcupdate.h>
#include <rdma/ib_verbs.h>

typedef int (*query_qp_fn)(struct ib_qp *, struct ib_qp_attr *, int, struct ib_qp_init_attr *);
typedef int (*req_notify_cq_fn)(struct ib_cq *, enum ib_cq_notify_flags);

/* rxe's own functions, saved from the first device patched (all rxe devices share them). */
static query_qp_fn orig_query_qp;
static req_notify_cq_fn orig_req_notify_cq;
static DEFINE_MUTEX(orig_lock);

/* Calls currently inside one of our wrappers: unload waits for them to leave. */
static atomic_t inflight = ATOMIC_INIT(0);

static int fix_query_qp(struct ib_qp *qp, struct ib_qp_attr *attr, int mask,
			struct ib_qp_init_attr *init_attr)
{
	int rc;

	atomic_inc(&inflight);
	rc = READ_ONCE(orig_query_qp)(qp, attr, mask, init_attr);
	if (!rc)
		attr->cur_qp_state = attr->qp_state;
	atomic_dec(&inflight);
	return rc;
}

static int fix_req_notify_cq(struct ib_cq *cq, enum ib_cq_notify_flags flags)
{
	int rc;

	atomic_inc(&inflight);
	if ((flags & IB_CQ_SOLICITED_MASK) == IB_CQ_SOLICITED_MASK)
		flags = (flags & ~IB_CQ_SOLICITED_MASK) | IB_CQ_NEXT_COMP;
	rc = READ_ONCE(orig_req_notify_cq)(cq, flags);
	atomic_dec(&inflight);
	return rc;
}

static struct ib_client rxe_fix_client;

static int rxe_fix_add(struct ib_device *dev)
{
	query_qp_fn qq = dev->ops.query_qp;
	req_notify_cq_fn rn = dev->ops.req_notify_cq;

	if (dev->ops.driver_id != RDMA_DRIVER_RXE)
		return -EOPNOTSUPP; /* not ours: ib_core records no client data */
	if (!qq || !rn || qq == fix_query_qp || rn == fix_req_notify_cq) {
		dev_warn(&dev->dev, "smctrace_rxe_fix: unexpected ops, left alone\n");
		return -EOPNOTSUPP;
	}
	mutex_lock(&orig_lock);
	if (!orig_query_qp) {
		orig_query_qp = qq;
		orig_req_notify_cq = rn;
	}
	mutex_unlock(&orig_lock);
	if (qq != orig_query_qp || rn != orig_req_notify_cq) {
		dev_warn(&dev->dev, "smctrace_rxe_fix: ops differ from the first rxe device's, left alone\n");
		return -EOPNOTSUPP;
	}
	WRITE_ONCE(dev->ops.query_qp, fix_query_qp);
	WRITE_ONCE(dev->ops.req_notify_cq, fix_req_notify_cq);
	/* Non-NULL client data marks the device as patched for rxe_fix_remove(). */
	ib_set_client_data(dev, &rxe_fix_client, &rxe_fix_client);
	dev_info(&dev->dev, "smctrace_rxe_fix: query_qp and req_notify_cq patched\n");
	return 0;
}

static void rxe_fix_remove(struct ib_device *dev, void *client_data)
{
	if (!client_data)
		return;
	WRITE_ONCE(dev->ops.query_qp, orig_query_qp);
	WRITE_ONCE(dev->ops.req_notify_cq, orig_req_notify_cq);
	dev_info(&dev->dev, "smctrace_rxe_fix: original query_qp and req_notify_cq restored\n");
}

static struct ib_client rxe_fix_client = {
	.name = "smctrace_rxe_fix",
	.add = rxe_fix_add,
	.remove = rxe_fix_remove,
};

static int __init rxe_fix_init(void)
{
	int err = ib_register_client(&rxe_fix_client);

	if (err) {
		pr_err("smctrace_rxe_fix: ib_register_client: %d\n", err);
		return err;
	}
	pr_info("smctrace_rxe_fix: patching the ops of every rxe device\n");
	return 0;
}

static void __exit rxe_fix_exit(void)
{
	/* Restores the ops of every patched device (rxe_fix_remove). */
	ib_unregister_client(&rxe_fix_client);
	/*
	 * A caller may have loaded one of our pointers just before it was restored: wait
	 * until every CPU left softirq/atomic sections (synchronize_rcu) and every task
	 * passed a voluntary context switch (synchronize_rcu_tasks), then for calls still
	 * inside rxe's function, before our code goes away.
	 */
	synchronize_rcu();
	synchronize_rcu_tasks();
	while (atomic_read(&inflight))
		msleep(1);
}

module_init(rxe_fix_init);
module_exit(rxe_fix_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("smctrace lab: rdma_rxe fixes for SMC-R on Linux 6.1 (ops table, no rebuild of rxe)");
