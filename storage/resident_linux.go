package storage

import "syscall"

// dropResident tells the kernel that this process need not keep the mapped
// pages [addr, addr+size) resident. bbolt maps the file read-only and
// shared: the pages stay in the page cache and fault back in when read, so
// nothing is lost, but they no longer count in the process's RSS (which the
// OOM killer and every RSS-based memory alarm look at).
func dropResident(addr uintptr, size int) {
	syscall.Syscall(syscall.SYS_MADVISE, addr, uintptr(size), syscall.MADV_DONTNEED)
}
