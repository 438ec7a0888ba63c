//! `/datasets/:id/label`: the labelling page for the dataset's instance type.

use leptos::prelude::*;
use shared::InstanceType;

use crate::pages::classify::ClassifyPage;
use crate::pages::common::{load_by_id, load_error};
use crate::pages::dataset::dataset_and_instance;
use crate::pages::label_boxes::BoxPage;
use crate::use_session;

#[component]
pub fn LabelPage() -> impl IntoView {
    let data = load_by_id("dataset", dataset_and_instance);
    view! {
        <section class="page labeller" data-testid="label-page">
            // No <Suspense> here: it would also wait for every resource the labelling page
            // reads (tags, images) and unmount the page, with its unsaved state, whenever one
            // of them reloads.
            {move || match data.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(Ok((d, i))) => match i.kind {
                    InstanceType::ImageClassification => {
                        view! { <ClassifyPage dataset=d instance=i/> }.into_any()
                    }
                    InstanceType::ObjectDetection | InstanceType::Ocr => {
                        view! { <BoxPage dataset=d instance=i/> }.into_any()
                    }
                    InstanceType::RecommendationRecall => {
                        view! { <p class="alert error">"Recall instances have no images to label."</p> }
                            .into_any()
                    }
                },
                Some(Err(e)) => load_error(e.message, "label-error").into_any(),
            }}
        </section>
    }
}

/// The images being labelled: every page of the filter loaded once, in the server's order,
/// and kept in `items`, so that labelling never shifts them under the user. Bumping `reload`
/// fetches them again.
#[derive(Clone, Copy)]
pub struct ImageSnapshot {
    pub items: RwSignal<Vec<shared::api::Image>>,
    pub reload: RwSignal<u32>,
    resource: LocalResource<crate::api::ApiResult<Vec<shared::api::Image>>>,
}

impl ImageSnapshot {
    pub fn new(dataset: i64, filter: impl Fn() -> crate::api::ImageFilter + 'static) -> Self {
        let session = use_session();
        let items = RwSignal::new(Vec::new());
        let reload = RwSignal::new(0_u32);
        let resource = LocalResource::new(move || {
            let filter = filter();
            reload.track();
            async move {
                session
                    .checked(crate::api::all_images(dataset, &filter))
                    .await
            }
        });
        Effect::new(move |_| {
            if let Some(Ok(list)) = resource.get() {
                items.set(list);
            }
        });
        Self {
            items,
            reload,
            resource,
        }
    }

    /// Loaded, and no image matches the filter.
    pub fn loaded_empty(self) -> bool {
        self.resource.with(|s| matches!(s, Some(Ok(_)))) && self.items.with(Vec::is_empty)
    }
}

/// "Loading", the load error, or "no images" for a snapshot.
#[component]
pub fn SnapshotStatus(snapshot: ImageSnapshot) -> impl IntoView {
    view! {
        {move || match snapshot.resource.get() {
            None => view! { <p class="muted">"Loading images…"</p> }.into_any(),
            Some(Err(e)) => view! { <p class="alert error" role="alert">{e.message}</p> }.into_any(),
            Some(Ok(_)) => ().into_any(),
        }}
        <Show when=move || snapshot.loaded_empty()>
            <div class="empty" data-testid="grid-empty">
                <p>"No images to show."</p>
                <p class="muted">"Every image of this filter is done, or the dataset is empty."</p>
            </div>
        </Show>
    }
}
