"""The syscall filter the worker installs on itself before any student code runs (issue 11).

A deny-list of the kernel interfaces a notebook never needs and that widen the kernel's attack
surface (keyrings, BPF, io_uring, userfaultfd, perf, ptrace and cross-process memory, kexec, the
mount family, namespaces, modules), plus every socket family but Unix and IP (no AF_NETLINK,
AF_VSOCK, AF_PACKET, AF_ALG). Denied calls fail with EPERM (EAFNOSUPPORT for sockets), so
libraries see an ordinary error. The filter is inherited by every child and cannot be removed.

Syscall numbers are per architecture; only x86_64's are known here (taken from
``asm/unistd_64.h``). Elsewhere nothing is installed and ``install()`` says why. A filter is a
classic BPF program, built here from a few opcodes: no libseccomp needed inside the box.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct
import sys

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
# Denied on x86_64, by name (for messages and tests) and number.
DENIED_X86_64 = {
    "keyctl": 250, "add_key": 248, "request_key": 249,
    "bpf": 321, "userfaultfd": 323, "perf_event_open": 298,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
    "pidfd_getfd": 438, "process_madvise": 440, "kcmp": 312,
    "kexec_load": 246, "kexec_file_load": 320,
    "mount": 165, "umount2": 166, "pivot_root": 155, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "unshare": 272, "setns": 308,
    "swapon": 167, "swapoff": 168, "reboot": 169, "acct": 163, "quotactl": 179, "syslog": 103,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "uselib": 134,
    "lookup_dcookie": 212, "open_by_handle_at": 304, "name_to_handle_at": 303,
    "modify_ldt": 154, "memfd_secret": 447,
    # SysV IPC and POSIX message queues outlive the process that made them: a segment left by one
    # submission would be charged to the next one's memory in the same warm box. numpy, torch and
    # multiprocessing use /dev/shm files instead.
    "shmget": 29, "msgget": 68, "semget": 64, "mq_open": 240,
}  # fmt: skip
SOCKET_CALLS_X86_64 = (41, 53)  # socket, socketpair: the family is the first argument
ALLOWED_SOCKET_FAMILIES = (1, 2, 10)  # AF_UNIX, AF_INET, AF_INET6 (the box has no network anyway)
CLONE_X86_64, CLONE3_X86_64 = 56, 435
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
CLONE_NEW_NAMESPACES = 0x7E020000

# Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_OFFSET_NR, _OFFSET_ARCH, _OFFSET_ARG0 = 0, 4, 16  # struct seccomp_data, little endian
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def _ret(value: int) -> bytes:
    return _op(_RET_K, value)


def build_filter() -> bytes:
    """The filter for x86_64 as raw ``struct sock_filter`` entries."""
    deny = _ret(_RET_ERRNO | errno.EPERM)
    program = [
        _op(_LD_W_ABS, _OFFSET_ARCH),
        _op(_JEQ_K, AUDIT_ARCH_X86_64, jt=1),  # 32-bit (int 0x80) calls have other numbers:
        deny,  # every one of them is refused
        _op(_LD_W_ABS, _OFFSET_NR),
        _op(_JGE_K, X32_SYSCALL_BIT, jf=1),  # the x32 ABI, likewise
        deny,
    ]
    for number in sorted(DENIED_X86_64.values()):
        program += [_op(_JEQ_K, number, jf=1), deny]
    # clone3 carries its flags in memory a filter cannot read: ENOSYS makes glibc fall back to clone.
    program += [_op(_JEQ_K, CLONE3_X86_64, jf=1), _ret(_RET_ERRNO | errno.ENOSYS)]
    # Calls whose arguments decide: jump to their checks after the final ALLOW.
    socket_check = [_op(_LD_W_ABS, _OFFSET_ARG0)]
    for family in ALLOWED_SOCKET_FAMILIES:
        socket_check.append(_op(_JEQ_K, family, jt=len(ALLOWED_SOCKET_FAMILIES) - len(socket_check) + 1))
    socket_check += [_ret(_RET_ERRNO | errno.EAFNOSUPPORT), _ret(_RET_ALLOW)]
    clone_check = [_op(_LD_W_ABS, _OFFSET_ARG0), _op(_JSET_K, CLONE_NEW_NAMESPACES, jf=1), deny, _ret(_RET_ALLOW)]
    dispatch = [*((number, "socket") for number in SOCKET_CALLS_X86_64), (CLONE_X86_64, "clone")]
    tails = {"socket": 0, "clone": len(socket_check)}  # offsets after the ALLOW that ends the dispatch
    for position, (number, tail) in enumerate(dispatch):
        # Skip the rest of the dispatch and its ALLOW to land on the tail.
        program.append(_op(_JEQ_K, number, jt=len(dispatch) - position + tails[tail]))
    program.append(_ret(_RET_ALLOW))
    return b"".join(program + socket_check + clone_check)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install() -> str:
    """Install the filter on this (single-threaded) process; returns "" or why it is not installed.

    NO_NEW_PRIVS is set first and on every Linux, filter or not: no setuid binary may raise the
    student's privileges (the uid sandbox has no user namespace to rely on).
    """
    if sys.platform != "linux":
        return f"no syscall filter: only Linux is supported (this is {sys.platform})"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return f"no syscall filter: PR_SET_NO_NEW_PRIVS failed ({errno.errorcode.get(ctypes.get_errno(), '?')})"
    if platform.machine() != "x86_64":
        return f"no syscall filter: only x86_64 is supported (this is {platform.machine()})"
    program = build_filter()
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        return f"no syscall filter: the kernel refused it ({errno.errorcode.get(ctypes.get_errno(), '?')})"
    return ""
