#!/usr/bin/env bash
# domain-xml.sh NAME MEM_MIB IP_CIDR ROOT_IMG DATA_DISK NIC_XML
# Prints a libvirt domain XML (TCG, 1 vCPU) for the app guest built by
# scripts/build-app-guest-image. Kernel, initrd and the command-line base are taken from the
# directory of ROOT_IMG (vmlinuz, initrd.img, app-guest.env) unless APP_GUEST_KERNEL,
# APP_GUEST_INITRD or APP_GUEST_CMDLINE_BASE are set. NIC_XML is the whole <interface> element.
#   vda: ROOT_IMG, raw, <readonly/> (identical on both hosts, never written)
#   vdb: DATA_DISK, qcow2 if it ends in .qcow2 (else raw; APP_GUEST_DATA_FORMAT overrides),
#        default cache mode (writeback in the host page cache; the guest's flushes still become
#        fdatasync on the host, so committed rows survive a QEMU kill -9 and a host crash).
#        cache='none' would need O_DIRECT, which tmpfs-backed test directories do not support.
# APP_GUEST_CONSOLE_LOG=FILE adds <log file=FILE/> to the serial console.
# Extra XML for inside <domain> (e.g. a <qemu:commandline> block) can be passed in APP_GUEST_EXTRA_XML.
set -euo pipefail
[[ $# == 6 ]] || { echo "usage: $0 NAME MEM_MIB IP_CIDR ROOT_IMG DATA_DISK NIC_XML" >&2; exit 2; }
name=$1 mem=$2 ip=$3 root_img=$(readlink -f "$4") data_disk=$(readlink -f "$5") nic=$6
dir=$(dirname "$root_img")
kernel=${APP_GUEST_KERNEL:-$dir/vmlinuz}
initrd=${APP_GUEST_INITRD:-$dir/initrd.img}
base=${APP_GUEST_CMDLINE_BASE:-}
if [[ -z $base && -f $dir/app-guest.env ]]; then
  base=$(sed -n 's/^KERNEL_CMDLINE_BASE="\(.*\)"$/\1/p' "$dir/app-guest.env")
fi
base=${base:-console=ttyS0 panic=-1 quiet}
case "$data_disk" in *.qcow2) fmt=qcow2 ;; *) fmt=raw ;; esac
fmt=${APP_GUEST_DATA_FORMAT:-$fmt}
console_log=${APP_GUEST_CONSOLE_LOG:-}   # optional: virtlogd copies ttyS0 into this file
cat <<XML
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$name</name>
  <memory unit='MiB'>$mem</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$kernel</kernel><initrd>$initrd</initrd>
    <cmdline>$base colo.ip=$ip</cmdline></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='$root_img'/>
      <target dev='vda' bus='virtio'/>
      <readonly/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='$fmt'/>
      <source file='$data_disk'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    $nic
    <serial type='pty'>${console_log:+<log file='$console_log' append='off'/>}<target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
${APP_GUEST_EXTRA_XML:-}</domain>
XML
