//! isobar's admin API (`proto/isobar/admin/v1/admin.proto`): the generated types, the conversion from
//! what isobar holds into them, the gRPC service, and the JSON the operator page reads.

pub mod json;
pub mod service;
pub mod snapshot;
pub mod svg;

/// The generated messages, client and server of `isobar.admin.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("isobar.admin.v1");
}
