//! The MPI transport of data-parallel training (the `mpi` feature): Open MPI or MPICH
//! through rsmpi, for runs started by `mpirun`, Slurm's `srun` or a Kubeflow MPIJob.
//!
//! MPI's default error handler ends every rank when a transfer fails, and a launcher ends
//! the whole job when one rank dies, so a lost rank never leaves the others waiting in a
//! sum; a rank whose run fails for its own reasons calls [`Mpi::abort`] after printing why.

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};

use super::collective::Collective;

/// MPI, initialised once for the process; finalised when dropped.
pub struct Mpi {
    world: SimpleCommunicator,
    // Dropped last: it finalises MPI.
    _universe: Universe,
}

impl Mpi {
    /// Initialises MPI; `None` when it was initialised before in this process.
    pub fn init() -> Option<Self> {
        let universe = mpi::initialize()?;
        Some(Mpi {
            world: universe.world(),
            _universe: universe,
        })
    }

    /// Ends every rank of the run with `code` (after this rank's failure was printed).
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn sum(&self, values: &mut [f32]) {
        let send = values.to_vec();
        self.world
            .all_reduce_into(&send[..], values, SystemOperation::sum());
    }

    fn broadcast(&self, values: &mut [f32]) {
        self.world.process_at_rank(0).broadcast_into(values);
    }

    fn barrier(&self) {
        self.world.barrier();
    }
}
