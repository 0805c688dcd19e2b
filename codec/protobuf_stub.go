package codec

import "errors"

// compileProtobufPlan is a placeholder until the Protobuf decoder lands.
func compileProtobufPlan(s *Schema, msgIndexes []int, cols []Column, opts Options) (valuePlan, error) {
	return nil, errors.New("protobuf is not built yet")
}
