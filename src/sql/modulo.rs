//! `MOD(x, y)`: the remainder of `x` divided by `y`, as Flink SQL and most
//! databases spell `x % y`, with the `%` operator's typing (both sides
//! coerced to a common numeric type, the result of that type; the sign of
//! `x`; null when either side is; an error on an integer division by zero).

use arrow::compute::kernels::numeric::rem;
use arrow::datatypes::DataType;
use datafusion_common::{Result, ScalarValue, exec_err};
use datafusion_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion_expr::{
    ColumnarValue, Operator, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// The `mod` scalar function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Modulo {
    signature: Signature,
}

impl Default for Modulo {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Modulo {
    fn name(&self) -> &str {
        "mod"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [x, y] = arg_types else {
            return exec_err!("mod takes two arguments, not {}", arg_types.len());
        };
        let (x, y) = BinaryTypeCoercer::new(x, &Operator::Modulo, y).get_input_types()?;
        Ok(vec![x, y])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let [x, y] = arg_types else {
            return exec_err!("mod takes two arguments, not {}", arg_types.len());
        };
        BinaryTypeCoercer::new(x, &Operator::Modulo, y).get_result_type()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [x, y] = args.args.as_slice() else {
            return exec_err!("mod takes two arguments, not {}", args.args.len());
        };
        let remainder = match (x, y) {
            (ColumnarValue::Scalar(x), ColumnarValue::Scalar(y)) => {
                let array = rem(&x.to_scalar()?, &y.to_scalar()?)?;
                return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                    &array, 0,
                )?));
            }
            (ColumnarValue::Array(x), ColumnarValue::Array(y)) => rem(x, y)?,
            (ColumnarValue::Array(x), ColumnarValue::Scalar(y)) => rem(x, &y.to_scalar()?)?,
            (ColumnarValue::Scalar(x), ColumnarValue::Array(y)) => rem(&x.to_scalar()?, y)?,
        };
        Ok(ColumnarValue::Array(remainder))
    }
}
