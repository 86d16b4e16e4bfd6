//go:build !linux

package storage

func dropResident(addr uintptr, size int) {}
