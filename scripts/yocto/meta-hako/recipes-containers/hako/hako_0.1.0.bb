SUMMARY = "hako: a secure, lightweight OCI container runtime for embedded Linux"
DESCRIPTION = "runc-compatible OCI runtime written in TypeScript for the target's Node.js, with a Node-API \
addon (clone3, pidfd, fd passing) and hako-init, a static helper that becomes each container's first process. \
The native parts are compiled here against the target's nodejs headers with the SDK's cross toolchain; \
no npm fetcher and no prebuilt binary is used."
SECTION = "console/utils"
LICENSE = "Apache-2.0 & MIT & ISC"
# MIT: node-addon-api (header-only, compiled into hako.node) and node-gyp-build (installed). ISC: yaml (installed).
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57 \
                    file://${UNPACKDIR}/node-addon-api/LICENSE.md;md5=fc3ff1120869be6b3cce17f9a06bfe2e \
                    file://${UNPACKDIR}/node-gyp-build/LICENSE;md5=bb7eae1c2fbb280c72665db9a1efc896 \
                    file://${UNPACKDIR}/yaml/LICENSE;md5=128142eeb7d706269284a8f0e5aa587c"

# Source: the package of this version without its prebuilds (compiled JS in dist/, src-native/, CMakeLists.txt),
# made reproducibly next to this recipe by:  npm run build && scripts/yocto/pack-source.sh
# The npm and npmsw fetchers are disabled in Yocto 6.0, so the JS dependencies come as plain https tarballs with
# checksums: node-addon-api (C++ headers, build time only), node-gyp-build (the loader, run time) and yaml (the
# policy server's file parser, run time; it has no dependencies of its own).
UNPACKDIR ??= "${WORKDIR}"
SRC_URI = "file://hako-${PV}.tgz;subdir=hako-${PV};striplevel=1 \
           https://registry.npmjs.org/node-addon-api/-/node-addon-api-8.9.2.tgz;name=addonapi;subdir=node-addon-api;striplevel=1 \
           https://registry.npmjs.org/node-gyp-build/-/node-gyp-build-4.8.4.tgz;name=gypbuild;subdir=node-gyp-build;striplevel=1 \
           https://registry.npmjs.org/yaml/-/yaml-2.9.1.tgz;name=yaml;subdir=yaml;striplevel=1"
SRC_URI[addonapi.sha256sum] = "4cd65698541b19a33f798f1dc25c02c6ed1c9d7749b8824b1a1ccecdd197c8ea"
SRC_URI[gypbuild.sha256sum] = "940450fb4158bddc23ae156432a67338a4d7ab6a585b639c61b3b0a14d2bac24"
SRC_URI[yaml.sha256sum] = "4ef6c54cf559b8a207b7b518378230805a1c84af239b14960e8c67c7d59de5d3"
S = "${UNPACKDIR}/hako-${PV}"

# nodejs: node_api.h and uv.h (bundled libuv) in ${STAGING_INCDIR}/node. The static helpers (hako-init, ...)
# link the target libc's libc.a: a musl image (TCLIBC = "musl") gives ~80 KB helpers, glibc ~0.4-0.7 MB.
DEPENDS = "nodejs"
inherit cmake features_check

# A container runtime, as meta-virtualization's: only for distros that enable "virtualization", which also turns on
# this layer's kernel config fragment (recipes-kernel/linux). A distro that configures its kernel otherwise can
# set REQUIRED_DISTRO_FEATURES:pn-hako = "".
REQUIRED_DISTRO_FEATURES ?= "virtualization"

# No node runs at build time (BitBake has no host node, and this recipe no nodejs-native): the helpers link the
# target toolchain's libc statically (HAKO_LIBC_FROM_NODE=OFF), and are left unstripped for BitBake to split
# their symbols into ${PN}-dbg (HAKO_STRIP=OFF).
EXTRA_OECMAKE = "-DNODE_INCLUDE_DIR=${STAGING_INCDIR}/node -DNODE_ADDON_API_DIR=${UNPACKDIR}/node-addon-api -DHAKO_LIBC_FROM_NODE=OFF -DHAKO_STRIP=OFF"
# As node-gyp builds it (Node's common.gypi): 64-bit off_t/rlim_t on 32-bit targets too.
TARGET_CFLAGS:append = " -D_LARGEFILE_SOURCE -D_FILE_OFFSET_BITS=64"
TARGET_CXXFLAGS:append = " -D_LARGEFILE_SOURCE -D_FILE_OFFSET_BITS=64"

do_install() {
    d=${D}${nonarch_libdir}/node_modules/hako
    install -d $d/bin $d/build/Release $d/node_modules/node-gyp-build $d/node_modules/yaml ${D}${bindir}
    # The package root is where package.json and binding.gyp are (lib/native/addon.ts#packageRoot).
    install -m 0644 ${S}/package.json ${S}/binding.gyp ${S}/README.md ${S}/LICENSE $d/
    cp -R --no-preserve=ownership ${S}/dist $d/
    install -m 0755 ${S}/bin/hako $d/bin/hako
    # containerd's shim (runtime io.containerd.hako.v2; containerd finds containerd-shim-hako-v2 on its PATH): the
    # native launcher built here, beside the Node side it runs for a new group (it looks beside its own real path).
    install -m 0644 ${S}/bin/hako-shim.js $d/bin/hako-shim.js
    install -m 0755 ${B}/hako-shim-launcher $d/bin/containerd-shim-hako-v2
    # node-gyp-build picks build/Release/*.node before any prebuild; the runtime takes hako-init (and the
    # other helpers CMakeLists.txt builds) beside it. hako-probe goes to ${PN}-probe.
    install -m 0755 ${B}/hako.node $d/build/Release/
    for f in ${B}/hako-*; do
        [ "$f" = ${B}/hako-shim-launcher ] && continue
        [ -f "$f" ] && [ -x "$f" ] && install -m 0755 "$f" $d/build/Release/
    done
    cp -R --no-preserve=ownership ${UNPACKDIR}/node-gyp-build/. $d/node_modules/node-gyp-build/
    # yaml: Node's build only (package.json "exports" sends node to dist/), not the browser one.
    install -m 0644 ${UNPACKDIR}/yaml/package.json ${UNPACKDIR}/yaml/LICENSE $d/node_modules/yaml/
    cp -R --no-preserve=ownership ${UNPACKDIR}/yaml/dist $d/node_modules/yaml/
    ln -sf ../lib/node_modules/hako/bin/hako ${D}${bindir}/hako
    ln -sf ../lib/node_modules/hako/bin/containerd-shim-hako-v2 ${D}${bindir}/containerd-shim-hako-v2
}

PACKAGES =+ "${PN}-probe"
SUMMARY:${PN}-probe = "hako-probe: static test/demo program that reports what it sees inside a container"
FILES:${PN}-probe = "${nonarch_libdir}/node_modules/hako/build/Release/hako-probe"
FILES:${PN} += "${nonarch_libdir}/node_modules/hako"

# nodejs >= 20 runs the JS; hako-init is static and needs nothing at run time.
RDEPENDS:${PN} = "nodejs"
# Kernel: namespaces (CONFIG_NAMESPACES, UTS/IPC/PID/NET/USER_NS), cgroups (v1 or v2; CONFIG_CGROUP_BPF and
# CONFIG_BPF_SYSCALL for v2 device rules), CONFIG_SECCOMP_FILTER, pidfd and clone3 (>= 5.3), openat2 (>= 5.6):
# recipes-kernel/linux/linux-yocto_%.bbappend adds them as a config fragment (files/hako.cfg) to linux-yocto.

# A runtime containerd, podman or docker can pick up as runc (meta-virtualization's runc provides virtual-runc,
# which containerd's VIRTUAL-RUNTIME_container_runtime names): /usr/bin/runc -> hako through update-alternatives,
# below runc-opencontainers' priority, so an image with both keeps the real runc unless it chooses otherwise.
inherit update-alternatives
RPROVIDES:${PN} += "virtual-runc"
ALTERNATIVE:${PN} = "runc"
ALTERNATIVE_LINK_NAME[runc] = "${bindir}/runc"
ALTERNATIVE_TARGET[runc] = "${nonarch_libdir}/node_modules/hako/bin/hako"
ALTERNATIVE_PRIORITY[runc] = "50"
# The tarball's prebuilds/ (x64, arm64, armv7) is not installed, so the arch QA check sees only this machine's code.
