//! The one call into the `gemm` crate that the flex kernels make, with its seventeen
//! arguments named: a product of two strided f32 matrices into a row-major one, on the
//! calling thread (the kernels parallelise over images and bands themselves).

/// An f32 matrix in memory: element `[r, c]` is at `ptr + r * row + c * col`.
#[derive(Clone, Copy)]
pub(crate) struct Strided {
    pub ptr: *const f32,
    pub row: isize,
    pub col: isize,
}

impl Strided {
    /// Row-major with rows `row_len` apart.
    pub fn rows(ptr: *const f32, row_len: usize) -> Self {
        Strided {
            ptr,
            row: row_len as isize,
            col: 1,
        }
    }

    /// The transpose of a row-major matrix whose rows are `row_len` apart.
    pub fn transposed(ptr: *const f32, row_len: usize) -> Self {
        Strided {
            ptr,
            row: 1,
            col: row_len as isize,
        }
    }
}

/// `dst[m x n] = lhs[m x k] rhs[k x n]`, plus what `dst` held if `accumulate`; `dst` is
/// row-major with rows `dst_row` apart.
///
/// # Safety
/// Every element the three matrices address lies inside its allocation, and `dst`'s do not
/// overlap `lhs`'s or `rhs`'s.
pub(crate) unsafe fn matmul(
    [m, n, k]: [usize; 3],
    (dst, dst_row): (*mut f32, usize),
    accumulate: bool,
    lhs: Strided,
    rhs: Strided,
) {
    // gemm computes dst = alpha dst + beta lhs rhs, reading dst only when asked to.
    let alpha = if accumulate { 1.0 } else { 0.0 };
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_row as isize,
            accumulate,
            lhs.ptr,
            lhs.col,
            lhs.row,
            rhs.ptr,
            rhs.col,
            rhs.row,
            alpha,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
