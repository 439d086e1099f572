package main

import (
	"testing"
	"time"
)

func TestSameBatchJob(t *testing.T) {
	tests := []struct {
		inJob, submitted string
		want             bool
	}{
		{"123", "123", true},
		{"123", "123.server", true}, // PBS adds its server to the id qsub prints
		{"123.server", "123", true},
		{"123", "1234", false},
		{"12", "123", false},
		{"", "123", false},
	}
	for _, tt := range tests {
		if got := sameBatchJob(tt.inJob, tt.submitted); got != tt.want {
			t.Errorf("sameBatchJob(%q, %q) = %v, want %v", tt.inJob, tt.submitted, got, tt.want)
		}
	}
}

func TestInJobCommand(t *testing.T) {
	tests := []struct {
		ip, mpiexec, want string
	}{
		{"", "", "/opt/ipc/bin/ipcluster mpiexec -n 8 --ip auto --mpiexec srun --timeout 1h0m0s"},
		{"10.1.0.5", "mpiexec", "/opt/ipc/bin/ipcluster mpiexec -n 8 --ip 10.1.0.5 --mpiexec mpiexec --timeout 1h0m0s"},
		{"", "/my mpi/mpiexec", "/opt/ipc/bin/ipcluster mpiexec -n 8 --ip auto --mpiexec '/my mpi/mpiexec' --timeout 1h0m0s"},
	}
	for _, tt := range tests {
		if got := inJobCommand("/opt/ipc/bin/ipcluster", 8, tt.ip, tt.mpiexec, time.Hour); got != tt.want {
			t.Errorf("inJobCommand(ip %q, mpiexec %q) =\n  %s\nwant\n  %s", tt.ip, tt.mpiexec, got, tt.want)
		}
	}
}
