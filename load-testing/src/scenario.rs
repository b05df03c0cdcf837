//! What each request is: one URL over and over, or Sock Shop's user journey.
//!
//! The journey is the one Sock Shop's own Locust file walks (microservices-demo/load-test):
//! home page, login, catalogue, an item, empty the cart, add the item, the basket, an order.
//! Arrivals stay open-loop: the n-th arrival is the next step of virtual user n / 8, whether or
//! not that user's previous step has answered.

use reqwest::Method;

/// Items of Sock Shop's catalogue (its seed data), picked in turn.
const ITEMS: [&str; 4] = [
    "03fef6ac-1896-4ce8-bd69-b798f85c6e0b",
    "3395a43e-2d88-40de-b95f-e00e1502085b",
    "510a0d7e-8e83-4193-b483-e27e09ddc34d",
    "808a2de1-1aaa-4c25-a9b9-6612e8f29a38",
];

/// Sock Shop's demo account.
const USER: (&str, &str) = ("user", "password");

/// The kind of traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scenario {
    /// The same path (and query) every time.
    Url { path: String },
    /// Sock Shop's user journey.
    SockShop,
}

/// One request to make.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    pub method: Method,
    /// Path and query, starting with `/`.
    pub path: String,
    pub json: Option<serde_json::Value>,
    /// `(user, password)` for HTTP basic authentication.
    pub basic_auth: Option<(&'static str, &'static str)>,
    /// The virtual user making it (selects its cookie jar).
    pub user: usize,
}

/// Steps of one journey.
pub const JOURNEY_STEPS: u64 = 8;

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Url { .. } => "url",
            Scenario::SockShop => "sockshop",
        }
    }

    /// The `n`-th request of the run, for `users` virtual users.
    pub fn request(&self, n: u64, users: usize) -> RequestSpec {
        let users = users.max(1) as u64;
        match self {
            Scenario::Url { path } => RequestSpec {
                method: Method::GET,
                path: path.clone(),
                json: None,
                basic_auth: None,
                user: (n % users) as usize,
            },
            Scenario::SockShop => {
                let journey = n / JOURNEY_STEPS;
                let item = ITEMS[(journey % ITEMS.len() as u64) as usize];
                let get = |path: String| (Method::GET, path, None);
                let (method, path, json) = match n % JOURNEY_STEPS {
                    0 => get("/".into()),
                    1 => get("/login".into()),
                    2 => get("/category.html".into()),
                    3 => get(format!("/detail.html?id={item}")),
                    4 => (Method::DELETE, "/cart".into(), None),
                    5 => (
                        Method::POST,
                        "/cart".into(),
                        Some(serde_json::json!({ "id": item, "quantity": 1 })),
                    ),
                    6 => get("/basket.html".into()),
                    _ => (Method::POST, "/orders".into(), None),
                };
                RequestSpec {
                    basic_auth: (n % JOURNEY_STEPS == 1).then_some(USER),
                    method,
                    path,
                    json,
                    user: (journey % users) as usize,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journey_walks_the_locust_steps_per_user() {
        let s = Scenario::SockShop;
        let steps: Vec<(Method, String)> = (0..8)
            .map(|n| {
                let r = s.request(n, 4);
                (r.method, r.path)
            })
            .collect();
        assert_eq!(steps[0], (Method::GET, "/".into()));
        assert_eq!(s.request(1, 4).basic_auth, Some(USER));
        assert!(steps[3].1.starts_with("/detail.html?id="));
        assert_eq!(steps[7], (Method::POST, "/orders".into()));
        assert!(s.request(5, 4).json.is_some());
        assert_eq!(s.request(7, 4).user, 0);
        assert_eq!(
            s.request(8, 4).user,
            1,
            "the next journey is the next user's"
        );
    }
}
