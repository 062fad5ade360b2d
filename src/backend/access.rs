//! Who is calling, and what they may see (rules 6, 7 and 8 of rules.md).
//!
//! The caller is named by three headers (`X-Organisation-Type`, `X-Organisation-Code`,
//! `X-User-Id`); what each organisation type may do is data, in
//! `mappings/organisationstypes.toml`. In production the identity would come from the
//! client certificate; here the headers are trusted, as behind STAR's gateway.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload};
use jiff::civil::Date;

use super::error::ApiError;
use super::store::{PersonEntry, Registrering};
use crate::catalog::{Catalog, Fejl, OrgType, Scope};
use crate::vos::{self, Kind, Registrant};

/// The longest organisation code or user id accepted (a CVR is 8 digits; user ids are short).
const MAX_IDENT_LEN: usize = 64;

#[derive(Debug, Clone)]
pub struct Caller {
    pub org: &'static OrgType,
    pub code: String,
    pub user: Option<String>,
}

fn ident(req: &HttpRequest, name: &str) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get(name) else {
        return Ok(None);
    };
    let s = v.to_str().map_err(|_| {
        ApiError::with_detail(Fejl::IdentitetMangler, format!("{name} er ikke ASCII"))
    })?;
    // As the OpenAPI document says: printable ASCII, 1-64 characters (HTTP already drops
    // surrounding whitespace).
    let s = s.trim();
    if s.is_empty() || s.len() > MAX_IDENT_LEN || !s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(ApiError::with_detail(
            Fejl::IdentitetMangler,
            format!("{name} er tom eller for lang"),
        ));
    }
    Ok(Some(s.to_owned()))
}

impl Caller {
    pub fn from_headers(req: &HttpRequest, catalog: &'static Catalog) -> Result<Self, ApiError> {
        let missing =
            |h: &str| ApiError::with_detail(Fejl::IdentitetMangler, format!("{h} mangler"));
        let ty = ident(req, vos::HDR_ORG_TYPE)?.ok_or_else(|| missing(vos::HDR_ORG_TYPE))?;
        let code = ident(req, vos::HDR_ORG_CODE)?.ok_or_else(|| missing(vos::HDR_ORG_CODE))?;
        let user = ident(req, vos::HDR_USER)?;
        let ty: u8 = ty.parse().map_err(|_| {
            ApiError::with_detail(
                Fejl::IdentitetMangler,
                format!("{} er ikke et tal", vos::HDR_ORG_TYPE),
            )
        })?;
        let org = catalog.orgtype(ty).ok_or(Fejl::UkendtOrganisationstype)?;
        Ok(Caller { org, code, user })
    }

    pub fn registrant(&self) -> Registrant {
        Registrant {
            organisationstype: self.org.kode,
            organisationskode: self.code.clone(),
            bruger_id: self.user.clone(),
        }
    }

    pub fn may_read(&self, kind: Kind) -> bool {
        self.org.laeser.contains(&kind)
    }

    /// Rule 7: the caller may register (create, update) this kind at all.
    pub fn check_register(&self, kind: Kind) -> Result<(), ApiError> {
        if self.org.registrerer.contains(&kind) {
            Ok(())
        } else {
            Err(Fejl::OperationIkkeTilladt.into())
        }
    }

    /// Rule 7: the caller may read this kind at all.
    pub fn check_read(&self, kind: Kind) -> Result<(), ApiError> {
        if self.may_read(kind) {
            Ok(())
        } else {
            Err(Fejl::OperationIkkeTilladt.into())
        }
    }

    /// Rule 7: the person is the caller's own citizen or member. A person not in the person
    /// register is STAR's only.
    pub fn check_person(&self, person: Option<&PersonEntry>) -> Result<(), ApiError> {
        let own = match (self.org.adgang, person) {
            (Scope::Alle, _) => true,
            (Scope::Ingen, _) | (_, None) => false,
            (Scope::Kommune, Some(p)) => p.kommunekode == self.code,
            (Scope::Akasse, Some(p)) => p.akasse.as_deref() == Some(self.code.as_str()),
        };
        if own {
            Ok(())
        } else {
            Err(Fejl::AdgangNaegtet.into())
        }
    }

    /// Rule 6: whether the caller may see this version. An a-kasse sees contact groups of the
    /// listed types only, and only those not ended more than `historik_aar` years ago.
    pub fn sees(&self, catalog: &Catalog, r: &Registrering, today: Date) -> bool {
        self.sees_version(catalog, r.kind, r.type_kode, r.slutdato, today)
    }

    /// [`Caller::sees`] over the parts it looks at (a WSB event carries only these).
    pub fn sees_version(
        &self,
        catalog: &Catalog,
        kind: Kind,
        type_kode: u32,
        slutdato: Option<Date>,
        today: Date,
    ) -> bool {
        if !self.may_read(kind) {
            return false;
        }
        if !self.org.akassefilter || kind != Kind::Kontaktgruppe {
            return true;
        }
        let view = &catalog.akasse;
        let horizon = today.saturating_sub(jiff::Span::new().years(view.historik_aar));
        view.synlige_typer.contains(&type_kode) && slutdato.is_none_or(|end| end >= horizon)
    }
}

/// Over mutual TLS, only the listed CVRs' certificates may name a caller in the identity
/// headers (the converter's); without TLS the headers are trusted (the embedded dev
/// backend on loopback).
fn trusted_to_set_identity(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(trusted) = req.app_data::<actix_web::web::Data<super::TrustedCallers>>() else {
        return Ok(());
    };
    let holder = req
        .conn_data::<crate::tls::PeerCert>()
        .map(|pc| pc.holder(Some(&trusted.tls)));
    match holder {
        Some(Ok(id)) if trusted.cvrs.contains(&id.cvr) => Ok(()),
        Some(Ok(id)) => Err(ApiError::with_detail(
            Fejl::IdentitetIkkeBetroet,
            format!("CVR {}", id.cvr),
        )),
        _ => Err(Fejl::IdentitetIkkeBetroet.into()),
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            trusted_to_set_identity(req)
                .and_then(|()| Catalog::load().map_err(|_| ApiError::from(Fejl::InternFejl)))
                .and_then(|c| Caller::from_headers(req, c)),
        )
    }
}
