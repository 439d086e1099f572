package mpi

import "testing"

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		rank, size int
		ok         bool
	}{
		{"nothing", nil, 0, 1, false},
		{"open mpi", map[string]string{"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "PMIX_RANK": "3"}, 3, 4, true},
		{"hydra", map[string]string{"PMI_RANK": "1", "PMI_SIZE": "2"}, 1, 2, true},
		{"srun", map[string]string{"SLURM_PROCID": "7", "SLURM_NTASKS": "8"}, 7, 8, true},
		{"pmix rank, slurm size", map[string]string{"PMIX_RANK": "2", "SLURM_NTASKS": "5"}, 2, 5, true},
		{"pmix rank alone", map[string]string{"PMIX_RANK": "2"}, 0, 1, false},
		{"rank out of range", map[string]string{"PMI_RANK": "2", "PMI_SIZE": "2"}, 0, 1, false},
		{"negative rank", map[string]string{"PMI_RANK": "-1", "PMI_SIZE": "2"}, 0, 1, false},
		{"not numbers", map[string]string{"PMI_RANK": "one", "PMI_SIZE": "two"}, 0, 1, false},
		{"a bad one, then a good one", map[string]string{"OMPI_COMM_WORLD_RANK": "x", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, 0, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, s, ok := fromEnv(func(k string) string { return tt.env[k] })
			if r != tt.rank || s != tt.size || ok != tt.ok {
				t.Errorf("fromEnv = %d, %d, %v; want %d, %d, %v", r, s, ok, tt.rank, tt.size, tt.ok)
			}
		})
	}
}

func TestParseOp(t *testing.T) {
	for _, o := range []Op{Sum, Min, Max, Prod, Land, Lor, Band, Bor} {
		got, err := ParseOp(o.String())
		if err != nil || got != o {
			t.Errorf("ParseOp(%q) = %v, %v", o.String(), got, err)
		}
	}
	if _, err := ParseOp("mean"); err == nil {
		t.Error("ParseOp(mean) succeeded")
	}
}

func TestOpCheck(t *testing.T) {
	if err := Band.check(dFloat64); err == nil {
		t.Error("a bitwise and of float64 passed the check")
	}
	if err := Sum.check(dFloat32); err != nil {
		t.Errorf("a sum of float32: %v", err)
	}
	if err := Op(42).check(dInt32); err == nil {
		t.Error("Op(42) passed the check")
	}
}

func TestTypeOf(t *testing.T) {
	type celsius float32
	if typeOf[celsius]() != dFloat32 || typeOf[int64]() != dInt64 || typeOf[uint8]() != dUint8 || typeOf[float64]() != dFloat64 {
		t.Error("typeOf maps an element type to the wrong datatype")
	}
}
