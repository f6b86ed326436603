//! stub
use crate::error::Result;
use crate::Ctx;
pub fn run(_ctx: &Ctx, _c: crate::cli::GroupCmd) -> Result<()> {
    Ok(())
}
