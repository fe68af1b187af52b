# The kernel options hako needs (files/hako.cfg), as a linux-yocto config fragment; do_kernel_configcheck
# warns when the final .config lacks one.
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"
SRC_URI:append = " file://hako.cfg"
