//! SMC netlink client.
