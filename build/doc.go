// Package build holds what installs outpost on a gateway: the systemd unit
// (outpost.service), the packaged example config (outpost.yaml), and the
// .deb's nfpm config and maintainer scripts (nfpm.yaml, deb/). It has no
// code; its tests hold those files to what the README promises:
//
//	go test -run Unit ./build/   the unit (and systemd-analyze verify)
//	make deb deb-check           the packages, through dpkg-deb
package build
