package jsonkeys

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestRename(t *testing.T) {
	legacy := map[string]string{"createdBy": "created_by", "specHash": "spec_hash"}
	for _, tc := range []struct{ in, want string }{
		{`{"createdBy":"a","x":1}`, `{"created_by":"a","x":1}`},
		{`{"created_by":"new","createdBy":"old"}`, `{"created_by":"new"}`},
		{`{"x":{"createdBy":"nested stays"}}`, `{"x":{"createdBy":"nested stays"}}`},
		{`[1,2]`, `[1,2]`},
		{`not json`, `not json`},
	} {
		got := Rename([]byte(tc.in), legacy)
		var g, w any
		if json.Unmarshal(got, &g) != nil || json.Unmarshal([]byte(tc.want), &w) != nil {
			if string(got) != tc.want {
				t.Errorf("Rename(%s) = %s, want %s", tc.in, got, tc.want)
			}
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("Rename(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
