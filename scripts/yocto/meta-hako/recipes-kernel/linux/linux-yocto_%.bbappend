# The kernel options hako needs (files/hako.cfg), as a linux-yocto config fragment; do_kernel_configcheck
# warns when the final .config lacks one. Only with the "virtualization" distro feature (which the hako recipe
# requires), so including this layer alone changes no kernel.
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"
SRC_URI:append = " ${@bb.utils.contains('DISTRO_FEATURES', 'virtualization', 'file://hako.cfg', '', d)}"
