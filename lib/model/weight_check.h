#pragma once
// A checkpoint's weights must be finite numbers: one NaN or infinity poisons every logit after
// it, far from its cause. load_weights checks each tensor just before uploading it, so the scan
// reads pages the upload then finds in cache.
namespace kvlab {

struct TensorRecord;

// Error (exit code 2) naming the file, the tensor, the first bad element and its value when `t`
// holds a NaN or an infinity, or when its dtype is not a floating-point type.
void check_weight_values(const TensorRecord& t);

}  // namespace kvlab
